"""Structured JSON logs: stdout, logs/combined.log and logs/error.log, one format for all.

structlog renders the lines; the standard library routes them, so third-party loggers (uvicorn,
SQLAlchemy, alembic) come out as the same JSON with the same request id.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

import structlog

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

_HANDLER_MARK = "_botplatform_handler"


def configure_logging(log_dir: Path, level: str = "INFO", to_stdout: bool = True) -> None:
    """Set up logging once per process; calling it again replaces only our own handlers."""
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        # WatchedFileHandler reopens the file after logrotate moves it.
        logging.handlers.WatchedFileHandler(log_dir / "combined.log", encoding="utf-8"),
        _with_level(
            logging.handlers.WatchedFileHandler(log_dir / "error.log", encoding="utf-8"),
            logging.ERROR,
        ),
    ]
    audit_file = logging.handlers.WatchedFileHandler(log_dir / "audit.log", encoding="utf-8")
    audit_file.addFilter(lambda record: record.name == "botplatform.audit")
    handlers.append(audit_file)
    if to_stdout:
        handlers.append(logging.StreamHandler(sys.stdout))

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own access line would duplicate ours (which carries the request id).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _with_level(handler: logging.Handler, level: int) -> logging.Handler:
    handler.setLevel(level)
    return handler


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
