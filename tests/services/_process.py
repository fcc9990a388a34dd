"""Process management shared by the real-service test fixtures.

A `ServiceProcess` runs one server in its own session (process group), with stdout and stderr in a
log file, and is stopped with SIGTERM then SIGKILL.  Every started process is also registered for an
`atexit` / SIGTERM clean-up and asks the kernel to kill it if the test process dies (best effort).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None
_live: set[ServiceProcess] = set()
_lock = threading.Lock()
_hooks_installed = False


class ServiceError(RuntimeError):
    """A service could not be started (or stopped); the message says why."""


def ci() -> bool:
    """True when running under CI, where an unavailable service must fail the tests."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        data = path.read_bytes()[-65536:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any uid change, which would clear the setting).
    if _libc is not None:
        with contextlib.suppress(Exception):
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill_all() -> None:
    with _lock:
        procs = list(_live)
    for proc in procs:
        proc.stop(timeout=5)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _kill_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_kill_all)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError):
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)


class ServiceProcess:
    """One server process: `start()` launches it, `stop()` terminates its whole process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: int | None = None,
        group: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.group = group
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        if self.running:
            return
        _install_hooks()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,  # kept open: some servers exit when it closes
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    user=self.user,
                    group=self.group,
                    extra_groups=[] if self.user is not None else None,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise ServiceError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        with _lock:
            _live.add(self)

    def wait_until(self, ready: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
        """Poll `ready()` until it is true; returns the seconds waited. Raises ServiceError."""
        began = time.monotonic()
        while True:
            if self.popen is None or self.popen.poll() is not None:
                code = None if self.popen is None else self.popen.returncode
                raise ServiceError(f"{self.name} exited (code {code}) before it was ready")
            with contextlib.suppress(Exception):
                if ready():
                    return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise ServiceError(f"{self.name} not ready after {timeout:.0f}s")
            time.sleep(interval)

    def stop(self, timeout: float = 30, *, kill: bool = False) -> None:
        """SIGTERM the process group (SIGKILL at once when `kill`), SIGKILL it after `timeout`."""
        popen = self.popen
        if popen is None:
            return
        try:
            pgid = popen.pid  # start_new_session: the group id is the leader's pid
            for sig in ([] if kill else [signal.SIGTERM]) + [signal.SIGKILL]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
                try:
                    popen.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)  # stragglers left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
            if popen.stdin is not None:
                with contextlib.suppress(OSError):
                    popen.stdin.close()
        finally:
            self.popen = None
            with _lock:
                _live.discard(self)
