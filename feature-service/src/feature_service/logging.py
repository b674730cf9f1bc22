"""structlog set-up: JSON lines in production, a readable console locally; trace ids on every line.

Tracing: ``TRACE_ID`` holds the trace id of the message or HTTP request being handled. It is a
bare ``ContextVar`` (one ``set`` per message, ~50 ns) rather than structlog's
``bind_contextvars`` (a dict copy per call), and a processor adds it to every log line, so a
line logged anywhere while a message is handled names the message's trace.

Standard-library loggers (aio-pika, aiormq, uvicorn, asyncio) go through the same renderer. Their
tracebacks become one line: the exception type, message and innermost frame as fields, because a
dropped broker connection otherwise prints forty lines per channel into a JSON log stream.
"""

from __future__ import annotations

import logging
import sys
import traceback
import uuid
from contextvars import ContextVar
from typing import Any

import structlog

TRACE_ID: ContextVar[str | None] = ContextVar("feature_service_trace_id", default=None)

_OWN_PREFIX = "feature_service"


def new_trace_id() -> str:
    return str(uuid.uuid4())


def current_trace_id() -> str | None:
    return TRACE_ID.get()


def _add_trace_id(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if "trace_id" not in event_dict:
        trace = TRACE_ID.get()
        if trace is not None:
            event_dict["trace_id"] = trace
    return event_dict


def _exception_summary(exc_info: Any) -> dict[str, str] | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[1] is None:
        return None
    exc = exc_info[1]
    summary = {"error_type": type(exc).__name__, "error": str(exc)[:500]}
    frames = traceback.extract_tb(exc_info[2]) if exc_info[2] is not None else []
    if frames:
        last = frames[-1]
        summary["error_at"] = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
    return summary


def _flatten_foreign_exceptions(
    _logger: Any, _method: str, event_dict: dict[str, Any]
) -> dict[str, Any]:
    """Third-party tracebacks -> ``error_type``/``error``/``error_at`` fields on one line."""
    record = event_dict.get("_record")
    name = record.name if record is not None else str(event_dict.get("logger", ""))
    if name.startswith(_OWN_PREFIX) or record is None:
        return event_dict
    exc_info = event_dict.pop("exc_info", None) or (record.exc_info if record.exc_info else None)
    record.exc_info = None
    record.exc_text = None
    summary = _exception_summary(exc_info) if exc_info else None
    if summary:
        event_dict.update(summary)
    return event_dict


def _one_line(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A foreign message may itself span lines (e.g. a pre-formatted traceback)."""
    text = event_dict.get("event")
    if isinstance(text, str) and "\n" in text:
        event_dict["event"] = text.replace("\n", " | ")
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """``fmt`` auto picks the console renderer on a terminal and JSON otherwise (containers)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve sys.stderr at each call: test runners and CLIs swap the stream.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _flatten_foreign_exceptions],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _one_line,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aio-pika / uvicorn chatter stays at warning unless debugging.
    for noisy in ("aio_pika", "aiormq", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` (test runners and CLIs swap the stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
