"""Structured logs (one JSON object per line on stderr) that never carry customer secrets.

Events log decisions (intent, confidence, timings), not message text; as a second line of
defence every formatted line is passed through PII masking and secret redaction.
"""
from __future__ import annotations

import json
import logging
import re
import time

from .entities import mask_pii

_SECRET = re.compile(r"\b(password|passcode|passwd|pin|cvv|cvc)(\s*(?:is|was|:|=)\s*)\S+", re.I)


def redact(text: str) -> str:
    return _SECRET.sub(r"\1\2[SECRET]", mask_pii(text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                "event": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return redact(json.dumps(data, ensure_ascii=False, default=str))


def configure(level: str = "WARNING") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("support_agent")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"support_agent.{name}")


def event(logger: logging.Logger, name: str, **fields) -> None:
    logger.info(name, extra={"fields": fields})


class Timer:
    """Wall-clock seconds of a stage: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)
