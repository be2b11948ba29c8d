"""Mailboxes for the email channel: where messages come from, what was answered, how replies leave.

Sources (an mbox file, a Maildir, one message on stdin) are read lazily, one message at a time, and
each message is capped at ``email.MAX_MESSAGE_BYTES``: a larger one is hashed as it streams past
and reaches the pipeline only as its header section, to be rejected. Nothing is ever held whole
beyond that cap, and input mailboxes are only read, never changed.

Exactly once. Each message has a key: its Message-ID, or the SHA-256 of its bytes where it has
none. A SQLite state store (WAL) records the key with the action taken. A message whose key is
recorded is a ``duplicate`` and gets nothing more. A draft's file name is derived from the key and
written whole (tmp/ then an atomic rename) before the key is committed; so a run killed between
the two finds that draft on restart and records it instead of writing a second one. Rejected
messages are recorded too (a rerun reports each message once), except where processing itself
failed ("internal error"): those are retried by the next run.
"""
from __future__ import annotations

import fcntl
import hashlib
import re
import smtplib
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from agent import logs
from agent.types import AgentError, first_line

from . import email

log = logs.get("email")

HEAD_BYTES = 256 * 1024  # how much of an oversized message is kept: enough for its header section
CHUNK = 1024 * 1024
ACTIONS = ("replied", "escalated", "skipped", "rejected", "duplicate")


@dataclass
class Item:
    """One message as read from a source."""

    source: str  # where it is: "mbox:12", "cur/1700000000.M1P2.host:2,S", "stdin"
    raw: bytes | None  # None when the message is larger than the cap
    size: int
    head: bytes  # the header section (at most HEAD_BYTES)
    digest: str  # SHA-256 of the whole message

    @cached_property
    def message_id(self) -> str | None:
        return email.message_id_of(self.head)

    @property
    def key(self) -> str:
        return self.message_id or f"sha256:{self.digest}"


class _Collector:
    """Gathers one message's bytes up to ``limit``; past it keeps only the head, and hashes all."""

    def __init__(self, limit: int | None = None):
        self.limit = email.MAX_MESSAGE_BYTES if limit is None else limit
        self.size, self.parts, self.head = 0, [], b""
        self.hash = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.size += len(chunk)
        if self.parts is not None:
            self.parts.append(chunk)
            if self.size > self.limit:
                self.head, self.parts = b"".join(self.parts)[:HEAD_BYTES], None

    @property
    def over(self) -> bool:
        return self.parts is None

    def item(self, source: str) -> Item:
        raw = b"".join(self.parts) if self.parts is not None else None
        return Item(source, raw, self.size, _header_section(raw if raw is not None else self.head),
                    self.hash.hexdigest())


def _header_section(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\n\n", 0, HEAD_BYTES), raw.find(b"\r\n\r\n", 0, HEAD_BYTES)) if i >= 0]
    return raw[:min(ends) + 1] if ends else raw[:HEAD_BYTES]


def read_mbox(path: str | Path) -> Iterator[Item]:
    """Messages of an mbox file (any 'From ' line at a line start begins one, as Python's mailbox reads it)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise AgentError(f"{path}: cannot read the mbox file ({exc.strerror})") from None
    start = f.read(CHUNK).lstrip()
    if start and not start.startswith(b"From "):
        f.close()
        raise AgentError(f"{path}: not an mbox file (it does not begin with a 'From ' line)")
    f.seek(0)
    return _mbox_items(f)


def _mbox_items(f: BinaryIO) -> Iterator[Item]:
    with f:
        index, collector, blank, at_start, in_separator = 0, None, None, True, False
        while line := f.readline(CHUNK):
            starts_line, at_start = at_start, line.endswith(b"\n")
            if in_separator:  # the rest of an overlong 'From ' line
                in_separator = not at_start
            elif starts_line and line.startswith(b"From "):
                if collector is not None:
                    yield collector.item(f"mbox:{index}")
                index, collector, blank, in_separator = index + 1, _Collector(), None, not at_start
            elif collector is not None:
                if blank is not None:
                    collector.add(blank)
                    blank = None
                if starts_line and line in (b"\n", b"\r\n"):
                    blank = line  # the separator before the next 'From ' line is not part of the message
                else:
                    collector.add(line)
        if collector is not None:
            yield collector.item(f"mbox:{index}")


def read_maildir(path: str | Path) -> Iterator[Item]:
    """Messages in a Maildir's new/ and cur/, in delivery order (see ``delivery_order``)."""
    root = Path(path)
    if not (root / "cur").is_dir() and not (root / "new").is_dir():
        raise AgentError(f"{root}: not a Maildir (no cur/ or new/ folder)")
    try:
        names = sorted(((name, sub) for sub in ("new", "cur") if (root / sub).is_dir()
                        for name in (p.name for p in (root / sub).iterdir()) if not name.startswith(".")),
                       key=lambda entry: (delivery_order(entry[0]), entry[1]))
    except OSError as exc:
        raise AgentError(f"{root}: cannot list the Maildir ({exc.strerror})") from None
    return _maildir_items(root, names)


def delivery_order(name: str) -> list:
    """Sort key of a Maildir file name: its runs of digits compared as numbers. Names begin with the
    delivery time, ``SECONDS.M<microseconds>P<pid>...``, and the microseconds are not zero-padded, so
    plain string order puts ``M99999`` after ``M123456`` of the same second."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def _maildir_items(root: Path, names: list[tuple[str, str]]) -> Iterator[Item]:
    for name, sub in names:
        file = root / sub / name
        try:
            with open(file, "rb") as f:
                yield _read_stream(f, f"{sub}/{name}")
        except (FileNotFoundError, IsADirectoryError):
            continue  # moved or removed by another program since it was listed
        except OSError as exc:
            raise AgentError(f"{file}: cannot read ({exc.strerror})") from None


def read_bytes(raw: bytes, source: str) -> Item:
    """One message already in memory (as an IMAP server hands it over), capped as every source is."""
    collector = _Collector()
    collector.add(raw)
    return collector.item(source)


def read_stream(stream: BinaryIO, source: str = "stdin") -> Iterator[Item]:
    """One message from a byte stream (standard input); reading stops once it is over the cap."""
    yield _read_stream(stream, source, stop_when_over=True)


def _read_stream(stream: BinaryIO, source: str, stop_when_over: bool = False) -> Item:
    collector = _Collector()
    while chunk := stream.read(CHUNK):
        collector.add(chunk)
        if stop_when_over and collector.over:
            break
    return collector.item(source)


class StateStore:
    """What has been done with each message key; one run at a time holds it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(f"{self.path}.lock", "a")
        except OSError as exc:
            raise AgentError(f"{self.path}: cannot open the state store ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise AgentError(f"{self.path}: the state store is in use by another run") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("""CREATE TABLE IF NOT EXISTS handled (
                key TEXT PRIMARY KEY, message_id TEXT, action TEXT NOT NULL, intent TEXT, confidence REAL,
                reason TEXT, draft TEXT, source TEXT, sent TEXT, at TEXT NOT NULL)""")
            # IMAP: the messages of a folder that are finished (UIDs are unique within one UIDVALIDITY),
            # and the keys whose draft was being appended to a drafts folder (so a restart looks for it).
            self.db.execute("""CREATE TABLE IF NOT EXISTS folder_done (
                folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, key TEXT,
                at TEXT NOT NULL, PRIMARY KEY (folder, uidvalidity, uid))""")
            self.db.execute("CREATE TABLE IF NOT EXISTS draft_started (key TEXT PRIMARY KEY, at TEXT NOT NULL)")
        except sqlite3.Error as exc:
            self.close()
            raise AgentError(f"{self.path}: not a usable state store ({exc})") from None

    def get(self, key: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM handled WHERE key = ?", (key,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def record(self, key: str, result: email.EmailResult, source: str) -> None:
        self.db.execute(
            "INSERT INTO handled (key, message_id, action, intent, confidence, reason, draft, source, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, result.message_id, result.action, result.intent, result.confidence, result.reason, result.draft,
             source, _now()))

    def mark_sent(self, key: str, status: str) -> None:
        self.db.execute("UPDATE handled SET sent = ? WHERE key = ?", (status, key))

    def done_uids(self, folder: str, uidvalidity: int) -> set[int]:
        rows = self.db.execute("SELECT uid FROM folder_done WHERE folder = ? AND uidvalidity = ?",
                               (folder, uidvalidity))
        return {uid for (uid,) in rows}

    def mark_done(self, folder: str, uidvalidity: int, uid: int, key: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO folder_done (folder, uidvalidity, uid, key, at) VALUES (?, ?, ?, ?, ?)",
                        (folder, uidvalidity, uid, key, _now()))

    def start_draft(self, key: str) -> bool:
        """Note that ``key``'s draft is about to be stored; False if that was noted before (a run stopped
        between storing a draft and recording its key may have stored it)."""
        added = self.db.execute("INSERT OR IGNORE INTO draft_started (key, at) VALUES (?, ?)", (key, _now()))
        return added.rowcount == 1

    def close(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None
        self._lock.close()

    def __enter__(self) -> "StateStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SmtpSender:
    """Sends replies through one SMTP connection (plain SMTP, STARTTLS where the server offers it)."""

    def __init__(self, address: str, timeout: float = 30):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise AgentError(f"--smtp takes HOST:PORT, not '{address}'")
        self.host, self.port, self.timeout, self.conn = host.strip("[]"), int(port), timeout, None

    def _connect(self) -> smtplib.SMTP:
        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        conn.ehlo()
        if conn.has_extn("starttls"):
            conn.starttls()
            conn.ehlo()
        return conn

    def send(self, msg) -> None:
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = self._connect()
                self.conn.send_message(msg)
                return
            except smtplib.SMTPServerDisconnected:
                self.conn = None
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.conn = None


def draft_name(key: str) -> str:
    """The outbox file name of the draft answering ``key``: the same on every run."""
    return f"support-agent.{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class MaildirOutbox:
    """Drafts as files in a local Maildir. ``put`` is idempotent: the file is named from the key."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def put(self, msg, key: str) -> str:
        """Store the draft answering ``key``; returns where it is. An AgentError means the outbox is unusable."""
        try:
            return str(email.write_draft(self.path, msg, draft_name(key)))
        except OSError as exc:
            raise AgentError(f"{self.path}: cannot write a draft ({exc.strerror or exc})") from None


class Runner:
    """Takes messages through the email channel exactly once, into an outbox and a state store."""

    def __init__(self, agent, outbox, state: StateStore, smtp: SmtpSender | None = None,
                 transcribe=None, record_rejected: bool = True):
        """``outbox``: a Maildir path, or any object with ``put(msg, key) -> where`` (an IMAP drafts folder).
        ``record_rejected``: record rejected messages too, so that a rerun of a mailbox reports every
        message once and then only as a duplicate (a single message on stdin is better checked afresh)."""
        self.outbox = outbox if hasattr(outbox, "put") else MaildirOutbox(outbox)
        self.agent, self.state, self.smtp = agent, state, smtp
        self.record_rejected = record_rejected
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
                f"email message too large: at least {item.size} bytes (limit {email.MAX_MESSAGE_BYTES})")), None
        else:
            try:
                result, msg = email.process(item.raw, self.agent, self.transcribe, key)
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


def default_state(outbox: str | Path) -> Path:
    return Path(outbox) / ".support-agent-state.sqlite"


def open_source(mbox: str | None = None, maildir: str | None = None, stream: BinaryIO | None = None) -> Iterator[Item]:
    if mbox:
        return read_mbox(mbox)
    if maildir:
        return read_maildir(maildir)
    return read_stream(stream)
