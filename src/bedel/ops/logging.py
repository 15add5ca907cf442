"""JSON logs with request ids; phone numbers never reach a log line whole."""

import logging
import re
import sys
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, WrappedLogger

from bedel.phones import mask_phone

# Not inside a longer token: a UUID's last group or a hash is not a phone.
_PHONE_LIKE = re.compile(r"(?<![\w-])\+?\d[\d \-]{6,}\d(?![\w-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_match(match: re.Match[str]) -> str:
    text = match.group()
    if _DATE.fullmatch(text):
        return text
    return mask_phone(re.sub(r"[ \-]", "", text))


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE_LIKE.sub(_mask_match, value)
    return value


def mask_phones(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {key: _mask(value) for key, value in event_dict.items()}


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written: cached loggers outlive a swapped stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# Libraries that log each SQL statement with its parameters (phones, key hashes, codes' hashes)
# when the root logger is at DEBUG: never below WARNING, whatever the root's level.
_STATEMENT_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool")


def configure_logging(level: str = "INFO") -> None:
    for name in _STATEMENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_phones,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )
