"""Structured logs (one JSON object per line on stderr) that never carry customer secrets.

Events log decisions (intent, confidence, timings), not message text; as a second line of
defence every value is passed through PII masking and secret redaction before it is written as JSON
(masking the JSON line instead would miss what escaping hides: the name in "Thanks,\\nJohn Smith").
While a customer's message is handled (``about``), their known name is masked too, as in training records.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import time

from .pii import mask_pii

# Any word after "password is"; only digits after "PIN is", so "my PIN is blocked" survives (it is
# what training records of the pin_blocked intent must keep).
_SECRET = re.compile(r"\b(password|passcode|passwd)(\s*(?:is|was|:|=)\s*)\S+"
                     r"|\b(pin|cvv|cvc|security\s+code)(\s*(?:is|was|:|=)?\s*)\d(?: ?\d){2,5}\b", re.I)


def redact(text: str, known_names=()) -> str:
    """``text`` with PII masked and passwords, PINs and card security codes replaced by [SECRET]."""
    return _SECRET.sub(lambda m: (m.group(1) or m.group(3)) + (m.group(2) or m.group(4)) + "[SECRET]",
                       mask_pii(text, known_names))


_KNOWN_NAMES: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("known_names", default=())


@contextlib.contextmanager
def about(*names: str | None):
    """Log lines written inside mask these names (e.g. the customer's, from an email header) wherever
    they appear, as training records do."""
    token = _KNOWN_NAMES.set(_KNOWN_NAMES.get() + tuple(n for n in names if n))
    try:
        yield
    finally:
        _KNOWN_NAMES.reset(token)


def _masked(value, known_names):
    """``value`` with every string in it redacted; what JSON cannot hold is written as its string."""
    if isinstance(value, str):
        return redact(value, known_names)
    if isinstance(value, dict):
        return {str(k): _masked(v, known_names) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_masked(v, known_names) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value), known_names)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                "event": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(_masked(data, _KNOWN_NAMES.get()), ensure_ascii=False)


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
