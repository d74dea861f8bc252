"""Logging through loguru: one JSON object per line on stderr, standard logging routed in.

Tracebacks are printed without variable values (``diagnose=False``): a local variable may
hold a secret. The access line, written once per request, goes straight to stderr in the
same JSON shape when JSON logging at INFO is on (``access_line``): loguru's record, frame
lookup and handler lock cost more than the rest of a read from the model.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from loguru import logger

__all__ = ["access_line", "configure_logging"]

_ACCESS_LOGGER = "agent_platform.middleware"
_INFO = 20
_direct = False  # access lines straight to stderr (JSON at INFO or below)


def _write_json(
    time: datetime, level: str, message: str, name: str | None, extra: Mapping[str, Any]
) -> None:
    line: dict[str, Any] = {
        "time": time.isoformat(),
        "level": level,
        "message": message,
        "logger": name,
    }
    line.update(extra)
    sys.stderr.write(json.dumps(line, default=str) + "\n")


def _json_sink(message: Any) -> None:
    record = message.record
    extra = record["extra"]
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        extra = {**extra, "exception": "".join(traceback.format_exception(kind, value, tb))}
    _write_json(record["time"], record["level"].name, record["message"], record["name"], extra)


def access_line(fields: Mapping[str, Any]) -> None:
    """The access line of one request (``message`` "request", ``fields`` as extra)."""
    if _direct:
        _write_json(datetime.now().astimezone(), "INFO", "request", _ACCESS_LOGGER, fields)
    else:
        logger.bind(**fields).info("request")


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "INFO", *, as_json: bool = True) -> None:
    global _direct
    _direct = as_json and logger.level(level.upper()).no <= _INFO
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
