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

# Any word after "password is"; only digits after "PIN is", so "my PIN is blocked" survives (it is
# what training records of the pin_blocked intent must keep).
_SECRET = re.compile(r"\b(password|passcode|passwd)(\s*(?:is|was|:|=)\s*)\S+"
                     r"|\b(pin|cvv|cvc|security\s+code)(\s*(?:is|was|:|=)?\s*)\d(?: ?\d){2,5}\b", re.I)


def redact(text: str, known_names=()) -> str:
    """``text`` with PII masked and passwords, PINs and card security codes replaced by [SECRET]."""
    return _SECRET.sub(lambda m: (m.group(1) or m.group(3)) + (m.group(2) or m.group(4)) + "[SECRET]",
                       mask_pii(text, known_names))


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
