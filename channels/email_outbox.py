"""Where drafts go: files in a Maildir (written whole, named from the message they answer, so a rerun
finds them), and replies sent through SMTP."""
from __future__ import annotations

import hashlib
import mailbox
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

from agent.types import AgentError

def write_draft(outbox: str | Path, msg: EmailMessage, name: str | None = None) -> Path:
    """Store ``msg`` in the outbox Maildir, flagged as a draft; returns the file's path.

    With ``name`` the file name is fixed (``cur/NAME:2,D``) and the write is idempotent: an existing
    draft of that name is kept and returned, and a new one appears whole (written in tmp/, renamed).
    """
    for sub in ("tmp", "new", "cur"):  # Maildir(create=True) makes them only where the folder is new
        (Path(outbox) / sub).mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(str(outbox), create=True)
    if name is None:
        entry = mailbox.MaildirMessage(msg)
        entry.set_subdir("cur")
        entry.set_flags("D")
        key = box.add(entry)
        return Path(outbox) / "cur" / f"{key}:2,D"
    final = Path(outbox) / "cur" / f"{name}:2,D"
    if final.exists():
        return final
    tmp = Path(outbox) / "tmp" / f"{name}.{os.getpid()}"
    tmp.write_bytes(msg.as_bytes())
    os.replace(tmp, final)
    return final


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
            return str(write_draft(self.path, msg, draft_name(key)))
        except OSError as exc:
            raise AgentError(f"{self.path}: cannot write a draft ({exc.strerror or exc})") from None

