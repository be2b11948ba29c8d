"""The demo's audit trail: who did what, when, and how it ended, with uploads by digest and size and the
agent's answers by intent (never a file name or a customer's words)."""
from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr

from agent import logs
from agent.types import Message, Reply

audit_log = logs.get("audit")


def audit(action: str, user: str | None, **fields) -> None:
    """One line of the audit trail: who (None without logins), when, what and how it ended."""
    logs.event(audit_log, action, user=user, time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
               **fields)


def audit_to(path: str) -> None:
    """Audit events go to ``path`` (JSON lines, mode 0600) whatever the log level, and to the logs at INFO."""
    audit_log.handlers.clear()
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))  # created private
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logs.JsonFormatter())
        audit_log.addHandler(handler)
    audit_log.setLevel(logging.INFO)
    audit_log.propagate = logging.getLogger("support_agent").isEnabledFor(logging.INFO)


def request_facts(args) -> dict:
    """What a request was given: uploaded files by digest and size (never their names: a file name can be a
    customer's), and the agent's answer it refers to (a correction's)."""
    uploads = Path(gr.utils.get_upload_folder()).resolve()
    files = [Path(a) for a in args if isinstance(a, str) and len(a) < 4096 and "\0" not in a
             and Path(a).resolve().is_relative_to(uploads) and os.path.isfile(a)]
    facts = {"files": [{"sha256": _digest(f), "bytes": f.stat().st_size} for f in files]} if files else {}
    return facts | {f"about_{k}": v for k, v in reply_facts(args).items()}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def reply_facts(outputs) -> dict:
    """The agent's answers among a handler's outputs: one (message, reply) pair, or a mailbox's list."""
    outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
    for item in outputs:
        if _is_answer(item):
            message, reply = item
            return {"channel": message.channel, "intent": reply.intent, "confidence": round(reply.confidence, 3),
                    "escalate": reply.escalate}
        if isinstance(item, list) and item and all(a is None or _is_answer(a) for a in item):
            answered = [a for a in item if a is not None]
            return {"messages": len(item), "answered": len(answered),
                    "escalated": sum(reply.escalate for _, reply in answered)}
    return {}


def _is_answer(item) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Message) and isinstance(item[1], Reply)
