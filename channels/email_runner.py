"""A mailbox run: messages taken through the email channel exactly once, into an outbox and a state store.

A draft's file name is derived from the message's key and written whole (tmp/ then an atomic
rename) before the key is committed; so a run killed between the two finds that draft on restart
and records it instead of writing a second one. Rejected messages are recorded too (a rerun reports
each message once), except where processing itself failed ("internal error"): those are retried by
the next run.
"""
from __future__ import annotations

import smtplib
import sqlite3
import time
from typing import Iterable, Iterator

from agent import logs
from agent.types import AgentError, first_line

from . import email, email_parse
from .email_outbox import MaildirOutbox, SmtpSender
from .email_sources import Item
from .email_state import StateStore

log = logs.get("email")

ACTIONS = ("replied", "escalated", "skipped", "rejected", "duplicate")


class Runner:
    """Takes messages through the email channel exactly once, into an outbox and a state store."""

    def __init__(self, agent, outbox, state: StateStore, smtp: SmtpSender | None = None,
                 transcribe=None, record_rejected: bool = True, settings=None):
        """``outbox``: a Maildir path, or any object with ``put(msg, key) -> where`` (an IMAP drafts folder).
        ``record_rejected``: record rejected messages too, so that a rerun of a mailbox reports every
        message once and then only as a duplicate (a single message on stdin is better checked afresh).
        ``settings``: the mailbox's own addresses, where they are not the agent's (see ``email.process``)."""
        self.outbox = outbox if hasattr(outbox, "put") else MaildirOutbox(outbox)
        self.agent, self.state, self.smtp = agent, state, smtp
        self.record_rejected, self.settings = record_rejected, settings
        self.transcribe = transcribe or email.Voicemail(agent)
        self.counts = dict.fromkeys(ACTIONS, 0)
        self.sent = 0
        self.started = time.perf_counter()

    def run(self, items: Iterable[Item]) -> Iterator[email.EmailResult]:
        for item in items:
            result = self.one(item)
            self.counts[result.action] += 1
            yield result

    def one(self, item: Item) -> email.EmailResult:
        key = item.key
        seen = self.state.get(key)
        if seen:
            result = email.EmailResult(item.message_id, "duplicate", seen["intent"], seen["confidence"],
                                       f"already {seen['action']} as {seen['source']} on {seen['at']}"
                                       + (f" (draft {seen['draft']})" if seen["draft"] else ""))
        else:
            result = self._answer(item, key)
        result.extra.update(source=item.source, key=key)
        logs.event(log, "email", source=item.source, action=result.action, intent=result.intent,
                   keyed_by="sha256" if key.startswith("sha256:") else "message-id")
        return result

    def _answer(self, item: Item, key: str) -> email.EmailResult:
        if item.raw is None:
            result, msg = email.EmailResult(item.message_id, "rejected", reason=(
                f"email message too large: at least {item.size} bytes (limit {email_parse.MAX_MESSAGE_BYTES})")), None
        else:
            try:
                result, msg = email.process(item.raw, self.agent, self.transcribe, key, self.settings)
            except Exception as exc:  # a bug must not stop the run; not recorded, so a rerun retries it
                return email.EmailResult(item.message_id, "rejected", reason=f"internal error: {type(exc).__name__}")
        if msg is not None:
            try:
                result.draft = self.outbox.put(msg, key)
            except AgentError:  # the outbox itself is unusable: stop rather than fail every message
                raise
            except Exception as exc:  # this one draft cannot be written; a rerun retries it
                return email.EmailResult(item.message_id, "rejected", reason=f"internal error: {type(exc).__name__}")
        if result.action != "rejected" or self.record_rejected:
            self._record(key, result, item.source)
        if self.smtp is not None and result.action == "replied" and msg is not None:
            self._send(key, result, msg)
        return result

    def _record(self, key: str, result: email.EmailResult, source: str) -> None:
        try:
            self.state.record(key, result, source)
        except sqlite3.Error as exc:
            raise AgentError(f"{self.state.path}: cannot record a message ({exc})") from None

    def _send(self, key: str, result: email.EmailResult, msg) -> None:
        """At most once: the key is committed before sending, so a crash here never sends twice."""
        try:
            self.smtp.send(msg)
        except (smtplib.SMTPException, OSError) as exc:
            detail = first_line(exc, type(exc).__name__)
            result.extra["sent"] = False
            result.reason = f"sending failed, the draft is in the outbox: {detail}"
            self.state.mark_sent(key, "failed")
            return
        result.extra["sent"] = True
        self.sent += 1
        self.state.mark_sent(key, "sent")

    def summary(self) -> str:
        """One line: how many messages, how long, and what was done with them."""
        seconds = time.perf_counter() - self.started
        total = sum(self.counts.values())
        parts = [f"{n} {action}" for action, n in self.counts.items() if n]
        sent = f", {self.sent} sent" if self.smtp is not None else ""
        return f"{total} message{'s' if total != 1 else ''} in {seconds:.1f} s: {', '.join(parts) or 'none'}{sent}"
