"""``get_logger()``: keyword fields in log calls, as structlog users write them.

``log.info("Company created", plan="pro")`` is ``logging.getLogger(name).info("Company
created", extra={"plan": "pro"})``: same record, same line, the caller's file and line number.
The wrapper calls the logger's ``_log`` itself (as ``Logger.info`` does), so keywords cost no
more than ``extra=``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["KeywordLogger", "get_logger"]

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = (
    logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL,
)


class KeywordLogger:
    """A :class:`logging.Logger` whose calls take fields as keywords.

    ``exc_info``, ``stack_info``, ``stacklevel`` and ``extra`` keep their meaning; every other
    keyword becomes a field of the line (merged over ``extra``). ``logger`` is the wrapped
    stdlib logger, for anything else (handlers, levels, ``isEnabledFor``).
    """

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def _emit(self, level: int, msg: object, args: tuple[Any, ...], exc_info: Any, extra: Mapping[str, Any] | None,
              stack_info: bool, stacklevel: int, fields: dict[str, Any]) -> None:
        if extra:
            fields = {**extra, **fields}
        # +2: this method and the level method stand between the caller and _log.
        self.logger._log(level, msg, args, exc_info, fields or None, stack_info, stacklevel + 2)

    def debug(self, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False, stacklevel: int = 1,
              extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_DEBUG):
            self._emit(_DEBUG, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def info(self, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False, stacklevel: int = 1,
             extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_INFO):
            self._emit(_INFO, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def warning(self, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False, stacklevel: int = 1,
                extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_WARNING):
            self._emit(_WARNING, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def error(self, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False, stacklevel: int = 1,
              extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_ERROR):
            self._emit(_ERROR, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, stack_info: bool = False,
                  stacklevel: int = 1, extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_ERROR):
            self._emit(_ERROR, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def critical(self, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False, stacklevel: int = 1,
                 extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(_CRITICAL):
            self._emit(_CRITICAL, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def log(self, level: int, msg: object, *args: Any, exc_info: Any = None, stack_info: bool = False,
            stacklevel: int = 1, extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self._emit(level, msg, args, exc_info, extra, stack_info, stacklevel, fields)

    def __repr__(self) -> str:
        return f"<KeywordLogger {self.logger.name}>"


def get_logger(name: str | None = None) -> KeywordLogger:
    """The logger ``name`` (the root logger for None), taking fields as keywords."""
    return KeywordLogger(logging.getLogger(name))
