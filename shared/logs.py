"""Logging for every Ferry process: one processor chain (structlog) for the APIs, the
workers, beat and the CLI (docs/OPERATIONS.md, "Logs").

Standard `logging.getLogger("ferry.…")` calls and structlog loggers (`get_logger`) end in
the same handler on the root logger, whose formatter runs the chain: context bound to the
request or task (`structlog.contextvars`), level, logger name, `extra` fields, an ISO UTC
timestamp, the formatted exception, secrets masked (`shared.log_masking`), then one of

* `json`: one JSON object per line, for production;
* `console`: `time LEVEL logger: message key=value …`, coloured on a terminal.

The format is each network's `log_format` setting (FERRY_<NET>_LOG_FORMAT); FERRY_LOG_FORMAT
is its default for both networks, and the format before any settings are read. `auto` (the
default) is `console` when stderr is a terminal and `json` otherwise.

The level is each network's `log_level` setting (FERRY_<NET>_LOG_LEVEL); FERRY_LOG_LEVEL
is its default for both networks, and the level of `ferry` before any settings are read.
A process's SIGHUP applies a new level at once (`set_level`, `shared.reload`).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor

from shared.log_masking import mask_event, mask_text

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HANDLER = "ferry"  # the name of the root logger's handler that this module installs
#: The first keys of every line, in this order; the rest follow as they were added.
LEADING_KEYS = ("timestamp", "level", "logger", "event")
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_NOT_EXTRA = {"color_message"}  # uvicorn's coloured copy of the message


def default_level() -> str:
    """FERRY_LOG_LEVEL, else INFO: the default of both networks' `log_level`."""
    return os.environ.get("FERRY_LOG_LEVEL", "INFO").upper()


def default_format() -> str:
    """FERRY_LOG_FORMAT, else `auto`: the default of both networks' `log_format`."""
    return os.environ.get("FERRY_LOG_FORMAT", "auto").strip().lower()


# -- the chain -------------------------------------------------------------------------------


def _add_extras(logger: Any, name: str, event_dict: EventDict) -> EventDict:
    """The `extra={...}` fields of a standard logging call."""
    record = event_dict.get("_record")
    for key, value in getattr(record, "__dict__", {}).items():
        if key not in _RECORD_KEYS and key not in _NOT_EXTRA and not key.startswith("_"):
            event_dict.setdefault(key, value)
    return event_dict


def _ordered(logger: Any, name: str, event_dict: EventDict) -> EventDict:
    leading = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    return leading | event_dict


#: Every line, from structlog or from standard logging, passes these first.
PRE_CHAIN: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _add_extras,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)


def configure_structlog() -> None:
    """structlog's loggers hand their events to standard logging (so to the handler)."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *PRE_CHAIN,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A structlog logger named `name` (`ferry.…`): `log.info("event", key=value)`."""
    configure_structlog()
    return structlog.get_logger(name)


def _shown(value: Any) -> str:
    """A field's value on a console line: plain when that is unambiguous, else its repr."""
    plain = isinstance(value, str) and value.isprintable() and value and " " not in value
    return value if plain else repr(value)


class ConsoleRenderer:
    """`time LEVEL logger: message key=value …`, the exception below; coloured if asked."""

    COLOURS = {"debug": "2", "info": "32", "warning": "33", "error": "31", "critical": "1;31"}

    def __init__(self, colours: bool) -> None:
        self.colours = colours

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colours else text

    def __call__(self, logger: Any, name: str, event_dict: EventDict) -> str:
        level = str(event_dict.pop("level", ""))
        head = " ".join(
            [
                str(event_dict.pop("timestamp", "")),
                self._paint(self.COLOURS.get(level, "0"), level.upper()),
                f"{event_dict.pop('logger', '')}: {event_dict.pop('event', '')}",
            ]
        )
        below = [str(event_dict.pop(key)) for key in ("stack", "exception") if key in event_dict]
        pairs = [self._paint("2", f"{key}=") + _shown(value) for key, value in event_dict.items()]
        return "\n".join([" ".join([head, *pairs]), *below])


def _terminal(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def chosen_format(log_format: str | None, stream: IO[str] | None = None) -> str:
    """`json` or `console`: `log_format` (default: FERRY_LOG_FORMAT), `auto` resolved by
    whether `stream` (default: stderr) is a terminal."""
    log_format = (log_format or default_format()).lower()
    if log_format not in ("json", "console"):  # auto, or a value the settings will refuse
        log_format = "console" if _terminal(stream or sys.stderr) else "json"
    return log_format


class Formatter(structlog.stdlib.ProcessorFormatter):
    """The chain's last steps; a record that cannot be formatted still yields a masked line."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:  # noqa: BLE001 - a log call must never raise or leak
            event = f"unformattable log record ({exc!r}): {record.msg!r} % {record.args!r}"
            plain = {"msg": event, "args": (), "exc_info": None, "exc_text": None}
            try:
                return super().format(logging.makeLogRecord(record.__dict__ | plain))
            except Exception:  # noqa: BLE001
                return mask_text(f"{record.name}: {event}")


def formatter(log_format: str | None = None, stream: IO[str] | None = None) -> Formatter:
    """The house formatter, in `log_format` (see `chosen_format`). Also uvicorn's factory."""
    configure_structlog()
    stream = stream or sys.stderr
    renderer: Processor = structlog.processors.JSONRenderer(ensure_ascii=False)
    if chosen_format(log_format, stream) == "console":  # colours on a terminal, unless NO_COLOR
        renderer = ConsoleRenderer(colours=_terminal(stream) and "NO_COLOR" not in os.environ)
    return Formatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            mask_event,  # after the traceback is text: it is masked too
            _ordered,
            renderer,
        ],
        foreign_pre_chain=PRE_CHAIN,
    )


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (a test's capture included). Where it
    is installed, Python's warnings become log lines too (`py.warnings`)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        logging.captureWarnings(True)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


# -- configuration -----------------------------------------------------------------------------


def _ours() -> logging.Handler | None:
    return next((h for h in logging.getLogger().handlers if h.get_name() == HANDLER), None)


def configure_logging(
    level: str | None = None, log_format: str | None = None, *, stream: IO[str] | None = None
) -> None:
    """Install the house handler on the root logger (replacing an earlier one of ours; other
    handlers stay), writing to `stream` (default: stderr) in `log_format` at `level`."""
    root = logging.getLogger()
    previous = _ours()
    if previous is not None:
        root.removeHandler(previous)
    handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.set_name(HANDLER)
    handler.setFormatter(formatter(log_format, stream))
    root.addHandler(handler)
    set_level(level or default_level())


def set_level(level: str) -> None:
    """The level of the root logger and of `ferry.*` (uvicorn's own loggers keep theirs)."""
    for name in ("", "ferry"):
        logging.getLogger(name).setLevel(level.upper())


def set_format(log_format: str) -> None:
    """The format of the house handler from now on (nothing without one)."""
    handler = _ours()
    if handler is not None:
        handler.setFormatter(formatter(log_format, getattr(handler, "stream", None)))


def uvicorn_log_config(level: str, log_format: str | None = None) -> dict[str, Any]:
    """uvicorn's logging configuration with every line through the house handler at `level`.

    uvicorn applies it in every API process, including each worker process of
    `serve --workers N`, which would otherwise have no handler for `ferry.*`. uvicorn's
    access line is left out: the request log (`shared.http_logging`) replaces it.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"] = {"ferry": {"()": "shared.logs.formatter", "log_format": log_format}}
    config["handlers"] = {"ferry": {"class": "shared.logs.StderrHandler", "formatter": "ferry"}}
    config["loggers"] = {
        "uvicorn": {"handlers": ["ferry"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "ferry": {"level": level.upper()},
    }
    config["root"] = {"handlers": ["ferry"], "level": level.upper()}
    return config
