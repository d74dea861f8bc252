"""Logging through loguru: one JSON object per line on stderr, standard logging routed in.

Tracebacks are printed without variable values (``diagnose=False``): a local variable may
hold a secret.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

from loguru import logger

__all__ = ["configure_logging"]


def _json_sink(message: Any) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
    }
    line.update(record["extra"])
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        line["exception"] = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(json.dumps(line, default=str) + "\n")


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "INFO", *, as_json: bool = True) -> None:
    logger.remove()
    if as_json:
        logger.add(_json_sink, level=level.upper(), backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level.upper(), backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.INFO, force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = [_ToLoguru()]
        logging.getLogger(name).propagate = False
    logging.getLogger("uvicorn.access").disabled = True
