"""The exactly-once record of a mailbox run: what was done with each message key.

A SQLite state store (WAL) records each message's key (``email_sources.Item.key``) with the action
taken; a message whose key is recorded is a ``duplicate`` and gets nothing more. One run at a time
holds a store (a lock file beside it). For IMAP it also records the finished UIDs of a folder and the
drafts being appended to a drafts folder.
"""
from __future__ import annotations

import fcntl
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from agent.types import AgentError


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

    def record(self, key: str, result, source: str) -> None:
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


def default_state(outbox: str | Path) -> Path:
    return Path(outbox) / ".support-agent-state.sqlite"
