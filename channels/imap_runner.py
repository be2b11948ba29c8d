"""An IMAP folder through the email channel: one pass, or watching it all day; exactly once across restarts.

Each message of the folder that is not yet finished (by UIDVALIDITY and UID, in the state store) is
fetched without marking it read and taken through ``email_runner.Runner``: its key (Message-ID, or a
hash), its one action, its draft, its JSON line. The draft is appended to the drafts folder with
``\\Draft``; the key is noted before the append, so a run stopped between the append and the key's
record finds that draft on restart instead of appending a second. Then the message is finished on
the server: a reply's message is marked read (its draft waits for a person), an escalated one is
flagged (``\\Flagged`` and ``$Escalated``) and left unread, and moved when asked; skipped machine mail
and duplicates are marked read; a rejected message is left as it is, for a person. Only then is its
UID recorded as finished. A message that failed inside the pipeline ("internal error") is not
finished, so the next run tries it again.

Watching: after each pass, IDLE where the server has it (a poll every ``poll_s`` seconds where not).
A dropped connection is reopened with exponential backoff (1 s to a minute); a server that cannot be
reached at the start, a refused login or a missing folder end the run with one line instead. SIGTERM
and SIGINT stop it after the message in hand.
"""
from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import Iterator

from agent import logs

from .email import EmailResult
from .email_runner import Runner
from .email_state import StateStore
from .imap import ESCALATED_KEYWORD, ConnectionLost, ImapMailbox, sleep_unless

log = logs.get("imap")

BACKOFF_S = (1, 2, 4, 8, 16, 32, 60)  # waits before each reconnection attempt; the last repeats


@dataclass
class ImapOptions:
    drafts: str | None = None  # None: the server's \Drafts folder, else "Drafts"
    escalate_folder: str | None = None  # escalated messages are moved here
    watch: bool = False
    poll_s: float = 3.0  # between checks where the server has no IDLE (setting imap_poll_s)


class Stop:
    """Set by SIGTERM or SIGINT (while ``catching``): the run ends after the message in hand."""

    def __init__(self):
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def catching(self):
        def handler(signum, _frame):
            self.signal = signal.Signals(signum).name

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class ImapOutbox:
    """The drafts folder as the Runner's outbox: ``put`` appends a draft once per key."""

    def __init__(self, mailbox: ImapMailbox, state: StateStore, folder: str):
        self.mailbox, self.state, self.folder = mailbox, state, folder

    def put(self, msg, key: str) -> str:
        if not self.state.start_draft(key):  # an earlier run got this far: its draft may be there already
            uid = self.mailbox.find(self.folder, msg["Message-ID"])
            if uid is not None:
                return self._where(uid)
        return self._where(self.mailbox.append(self.folder, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))))

    def _where(self, uid: int | None) -> str:
        return f"imap:{self.folder}" + (f";UID={uid}" if uid is not None else "")


class ImapRunner:
    """Takes an IMAP folder's messages through ``runner`` exactly once; ``results()`` yields each result."""

    def __init__(self, mailbox: ImapMailbox, runner: Runner, options: ImapOptions, stop: Stop | None = None):
        self.mailbox, self.runner, self.options = mailbox, runner, options
        self.state = runner.state
        self.stop = Stop() if stop is None else stop  # not "or": a Stop not yet set is falsy
        self.failed: set[int] = set()  # UIDs whose processing failed in this run: tried again by the next one
        self.listed = 0  # the highest UID listed on this connection: later looks list only above it

    def pending(self) -> list[int]:
        """UIDs of the folder's messages not finished yet, oldest first."""
        return self._listing()[1]

    def _listing(self) -> tuple[list[int], list[int]]:
        """(UIDs listed, those not finished): every message on a fresh connection, then only those that came
        since, which no run can have finished (UIDs only grow within one UIDVALIDITY, and one run at a time
        holds the state store)."""
        listed = self.mailbox.uids(after=self.listed)
        skip = self.failed if self.listed else self.failed | self.state.done_uids(self.mailbox.name,
                                                                                  self.mailbox.uidvalidity)
        return listed, [uid for uid in listed if uid not in skip]

    def results(self) -> Iterator[EmailResult]:
        """One pass over the folder; with ``watch``, then every new message as it arrives, until stopped.
        The mailbox must be open; in watch mode a dropped connection is reopened with backoff."""
        attempt = 0
        while not self.stop:
            try:
                if not self.mailbox.connected:
                    self.mailbox.open(self.options.drafts, self.options.escalate_folder)
                    self.listed = 0  # the folder may have changed, UIDVALIDITY too
                    logs.event(log, "imap_reconnected", server=self.mailbox.address.server, attempts=attempt)
                    attempt = 0
                yield from self._pass()
                if not self.options.watch or self.stop:
                    return
                self.mailbox.wait(self.options.poll_s, lambda: bool(self.stop))
            except ConnectionLost as exc:
                if not self.options.watch:
                    raise
                self.mailbox.close()
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                log.warning("imap_connection_lost", extra={"fields": {"error": str(exc), "retry_in_s": wait}})
                sleep_unless(lambda: bool(self.stop), wait)

    def _pass(self) -> Iterator[EmailResult]:
        listed, pending = self._listing()
        self.listed = max([self.listed, *listed])
        for uid in pending:
            if self.stop:
                return
            item = self.mailbox.fetch(uid)
            if item is None:  # expunged since it was listed
                continue
            (result,) = self.runner.run([item])
            self._finish(uid, item.key, result)
            yield result

    def _finish(self, uid: int, key: str, result: EmailResult) -> None:
        recorded = self.state.get(key)
        if recorded is None:  # not recorded: processing failed, and the next run tries it again
            self.failed.add(uid)
            return
        action = recorded["action"]  # for a duplicate, what was done the first time
        move_to = None
        if action == "escalated":
            flags, move_to = (b"\\Flagged", ESCALATED_KEYWORD), self.options.escalate_folder
        elif action == "rejected":
            flags = ()
        else:
            flags = (b"\\Seen",)
        self.mailbox.finish(uid, flags, move_to)
        if move_to:
            result.extra["moved_to"] = move_to
        self.state.mark_done(self.mailbox.name, self.mailbox.uidvalidity, uid, key)
