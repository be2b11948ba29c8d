"""Training records: one JSON line per handled message, PII masked before anything is written.

Every handled call and email (``Settings.records_file``) and every correction from the demo's
feedback (``Settings.feedback_file``) becomes a ``Record``; ``finetune/prepare.py`` turns them
into training data. Masking happens here, at the only place records are written, so no caller
can forget it.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from .logs import redact
from .types import AgentError, Message, Reply

FREE_TEXT = ("text", "reply", "corrected_reply", "reason")  # fields that can carry customer secrets


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Record:
    channel: str  # "call", "email", "text"
    text: str  # what the customer said or wrote
    intent: str  # what the model predicted
    confidence: float
    reply: str  # what the agent drafted
    source: str = ""  # "composer" or "generator"
    escalate: bool = False
    reason: str | None = None  # why it escalated
    corrected_intent: str | None = None  # a person's correction, from the demo's feedback
    corrected_reply: str | None = None
    time: str = field(default_factory=_now)  # UTC, ISO 8601
    user: str | None = None  # who saved the correction (the demo's login), when there are logins

    @classmethod
    def from_dict(cls, data: dict) -> "Record":
        """A record from a parsed JSON line; unknown keys are ignored, missing required ones are an error."""
        known = {f.name for f in fields(cls)}
        missing = {"channel", "text", "intent", "confidence", "reply"} - data.keys()
        if missing:
            raise AgentError(f"not a training record: missing {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})


def from_reply(message: Message, reply: Reply, corrected_intent: str | None = None,
               corrected_reply: str | None = None, user: str | None = None) -> Record:
    """The record of one handled message. The customer's known name (e.g. from the email header) is
    masked here, where it is still known; ``append`` masks everything else."""
    record = Record(channel=message.channel, text=message.text, intent=reply.intent,
                    confidence=round(float(reply.confidence), 4), reply=reply.text, source=reply.source,
                    escalate=reply.escalate, reason=reply.reason, corrected_intent=corrected_intent,
                    corrected_reply=corrected_reply, user=user)
    return masked(record, known_names=message.known_names())


def masked(record: Record, known_names: list[str] = ()) -> Record:
    """``record`` with PII (cards, IBANs, emails, phones, names) and passwords/PINs masked in free text."""
    changes = {name: redact(value, known_names) for name in FREE_TEXT
               if isinstance(value := getattr(record, name), str)}
    return Record(**{**asdict(record), **changes})


def append(path: str | os.PathLike, record: Record) -> None:
    """Append ``record``, masked, as one JSON line. One ``write`` on an O_APPEND descriptor under an
    exclusive lock, so concurrent writers (the agent, the demo) never interleave lines."""
    line = (json.dumps(asdict(masked(record)), ensure_ascii=False) + "\n").encode("utf-8")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # records are customer data
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the lock
    except OSError as exc:
        raise AgentError(f"cannot write training record to {path}: {exc.strerror or exc}") from None

