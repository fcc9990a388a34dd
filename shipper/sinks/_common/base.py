"""The interface each sink implements: encode a batch, send it, read the backend's answer."""

from __future__ import annotations

import abc
from typing import Generic

from typing_extensions import TypeVar

from shipper.event import Event
from shipper.lines import LineBatch
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.outcome import SendOutcome

# The default lets shared code (delivery, driver, replay, restore) say just ``Sink``.
ConfigT = TypeVar("ConfigT", bound=SinkConfigBase, covariant=True, default=SinkConfigBase)


class Sink(abc.ABC, Generic[ConfigT]):
    """One backend, typed by its own config class. The shared delivery retries and
    dead-letters around ``send``; the driver batches from the buffer."""

    def __init__(self, name: str, config: ConfigT, data_dir: str) -> None:
        self.name = name
        self.config = config
        self.data_dir = data_dir

    async def start(self) -> None:
        """Create clients; called once before the first ``send``."""

    async def healthcheck(self) -> None:
        """Raise a :class:`SinkError` saying what is wrong if the backend is unusable."""

    @abc.abstractmethod
    async def send(self, events: list[Event]) -> SendOutcome:
        """Send one batch; return what the backend accepted, wants retried, or rejected."""

    def event_size(self, event: Event) -> int:
        """Approximate encoded size of one event, for ``batch.max_bytes``."""
        return len(event.raw) + 64

    accepts_lines = False
    """Whether :meth:`send_lines` sends line batches from their columns."""

    async def send_lines(self, batches: list[LineBatch]) -> SendOutcome | None:
        """Send the events of ``batches`` as :meth:`send` would (``None``: cannot, send the events).

        Events named in the outcome are those :meth:`~shipper.lines.LineBatch.events` makes.
        """
        return None

    def lines_size(self, batch: LineBatch) -> int:
        """Approximate encoded size of a line batch, for ``batch.max_bytes``."""
        return len(batch.data) + 63 * len(batch)

    async def close(self) -> None:
        """Release clients."""
