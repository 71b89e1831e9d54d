"""structlog configuration: JSON lines in production, a readable console on a terminal.

Request context (request_id, …) is bound in contextvars by the request middleware and merged
into every line logged while the request runs, including lines from deep inside services.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.types import Processor


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())

    renderer: Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        final: list[Processor] = [renderer]
        factory: Any = structlog.PrintLoggerFactory()
    else:
        final = [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        # The process's real stdout (fd 1), not whatever object sys.stdout is at the moment.
        factory = structlog.BytesLoggerFactory(file=(sys.__stdout__ or sys.stdout).buffer)

    structlog.configure(
        processors=[*_shared_processors(), *final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )

    # Libraries that log through the standard library (uvicorn, alembic, asyncio) get the
    # same format, so one parser reads every line.
    stdlib_final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode()),
    ]
    handler = logging.StreamHandler(sys.__stdout__ or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
            processors=stdlib_final,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for name in ("uvicorn.access",):
        logging.getLogger(name).disabled = True
    for name in ("httpx", "httpcore", "stripe", "alembic"):
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
