"""``ecvi-logs retention …`` and ``ecvi-logs archive …``: the operator commands of the jobs.

``options`` reads the shared flags into typed objects, ``output`` prints results and picks exit
codes, and each command group lives in a module of its own (``archive_*``, ``retention_jobs``).

Exit codes: 0 done (or nothing to do), 1 drift, a failed day, or a verify problem, 2 bad usage,
3 (retention commands) a backend that could not be reached or answered with an error.
"""

from shipper.jobs.cli.archive_checks import archive_gate, archive_verify
from shipper.jobs.cli.archive_jobs import archive
from shipper.jobs.cli.archive_restore import archive_drill, archive_restore
from shipper.jobs.cli.retention_jobs import retention

for _command in (archive_verify, archive_gate, archive_restore, archive_drill):
    archive.add_command(_command)

COMMANDS = [retention, archive]

__all__ = ["COMMANDS", "archive", "retention"]
