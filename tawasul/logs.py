"""Logging for every process (`web serve`, `agi serve`, `call watch`): plain text lines, or with the
setting log_format = "json" one JSON object a line (time, level, logger, message, and any `extra`)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord has: anything else on a record came from `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(settings, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(text_format)


def configure(settings, level: int = logging.INFO, text_format: str = TEXT_FORMAT) -> None:
    """The root logger writes to stderr in the configured format (replacing any earlier handler)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings, text_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
