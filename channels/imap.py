"""IMAP mailboxes for the email channel: where the folder is, the password, a verified connection, and
the few folder operations the channel needs (list, fetch without reading, append a draft, flag, move,
wait for new mail).

Library: IMAPClient (BSD licence, maintained, pure Python on top of the standard library's imaplib).
imaplib alone speaks the protocol, but on the Pythons this project supports (3.11 and later) it has
no IDLE (added in 3.14) and no MOVE, and leaves every response to be parsed by hand (FETCH literals,
flags, SELECT's UIDVALIDITY, LIST attributes). IMAPClient parses them, has IDLE, MOVE, special-use
folder lookup and STARTTLS with a given SSL context, and keeps LOGIN's arguments out of its debug log.

Connections: ``imaps://`` is TLS from the first byte (port 993); ``imap://`` is upgraded with
STARTTLS (port 143). Certificates are verified against the system's authorities unless
``insecure`` (a self-signed certificate). Plain text, the password included, is allowed only when the
server offers no STARTTLS and the connection's other end is a loopback address (a local test
server); anywhere else it is refused. The password never comes from the command line or a URL, and
no error or log line carries it.
"""
from __future__ import annotations

import contextlib
import ipaddress
import netrc
import os
import re
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent import logs
from agent.types import AgentError

from . import email_parse
from .email_sources import Item, read_bytes

log = logs.get("imap")

PASSWORD_ENV = "SUPPORT_AGENT_IMAP_PASSWORD"
DRAFT_FLAGS = (b"\\Draft", b"\\Seen")  # a draft the agent wrote shows as read in the drafts folder
ESCALATED_KEYWORD = b"$Escalated"  # beside \Flagged, where the folder takes keywords
IDLE_RENEW_S = 600  # RFC 2177: a client re-issues IDLE at least every 29 minutes
FETCH_CHUNK = 500  # UIDs whose sizes are asked in one FETCH


def sleep_unless(stopped: Callable[[], bool], seconds: float) -> None:
    """Sleep ``seconds``, or until ``stopped()`` (asked four times a second)."""
    end = time.monotonic() + seconds
    while not stopped() and time.monotonic() < end:
        time.sleep(max(0.0, min(0.25, end - time.monotonic())))


class ConnectionLost(AgentError):
    """The server could not be reached, or the connection dropped: a watcher reconnects."""


@dataclass(frozen=True)
class ImapAddress:
    """``imaps://USER@HOST[:PORT]/FOLDER``: an account's folder, without its password."""

    scheme: str  # imaps (TLS) or imap (STARTTLS)
    user: str
    host: str
    port: int
    folder: str

    @classmethod
    def parse(cls, url: str) -> "ImapAddress":
        usage = "--imap takes imaps://USER@HOST[:PORT]/FOLDER (or imap:// for STARTTLS)"
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise AgentError(f"{usage}: {exc}") from None
        userinfo, at, _ = parts.netloc.rpartition("@")
        if ":" in userinfo:  # never echo it: this is the password
            raise AgentError("--imap: a password does not belong in the URL (it would show in the process list and "
                             f"the shell's history); set {PASSWORD_ENV}, use ~/.netrc or the settings file")
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not userinfo:
            raise AgentError(f"{usage}, not '{url[:200]}'")
        return cls(parts.scheme, urllib.parse.unquote(userinfo), parts.hostname,
                   port or (993 if parts.scheme == "imaps" else 143),
                   urllib.parse.unquote(parts.path.lstrip("/")) or "INBOX")

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{urllib.parse.quote(self.user, safe='@')}@{self.server}/{self.folder}"


def with_own_address(settings, address: ImapAddress):
    """``settings`` with the account's user among its own addresses, where it is an address: mail from
    it is a loop."""
    if "@" not in address.user:
        return settings
    return settings.replace(own_addresses=",".join(filter(None, (settings.own_addresses, address.user))))


def password(address: ImapAddress, settings, config_file: Path | None, env: dict | None = None) -> str:
    """The account's password: ``SUPPORT_AGENT_IMAP_PASSWORD``, else ``~/.netrc`` (or ``$NETRC``), else
    setting ``imap_password`` from a settings file that only its owner can read."""
    env = os.environ if env is None else env
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    found = _netrc_password(address, Path(env.get("NETRC") or Path.home() / ".netrc"))
    if found is not None:
        return found
    if settings.imap_password and config_file is not None:
        _check_private(config_file)
        return settings.imap_password
    raise AgentError(f"no password for {address.user} at {address.host}: set {PASSWORD_ENV}, add 'machine "
                     f"{address.host} login {address.user} password ...' to ~/.netrc, or set imap_password in "
                     "the settings file (either file readable by you alone)")


def _netrc_password(address: ImapAddress, path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(address.host)
    except (netrc.NetrcParseError, OSError, UnicodeError) as exc:
        raise AgentError(f"{path}: cannot be read ({getattr(exc, 'msg', None) or type(exc).__name__})") from None
    if entry is None or (entry[0] and entry[0] != address.user) or not entry[2]:
        return None
    _check_private(path)
    return entry[2]


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AgentError(f"{path} holds the IMAP password but other users may read it (mode {mode:o}): "
                         f"chmod 600 {path}")


def is_loopback(ip: str) -> bool:
    """Whether ``ip`` is this machine (127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6)."""
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def tls_context(insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:  # a self-signed certificate: still encrypted, but the server is not authenticated
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _server_text(exc: Exception) -> str:
    text = str(exc).strip()
    text = re.sub(r"^b(['\"])(.*)\1$", r"\2", text)  # imaplib hands the server's words over as a bytes repr
    return " ".join(text.split())[:300] or type(exc).__name__


class ImapMailbox:
    """One logged-in connection with the folder to read selected, reopened after a drop by ``open``."""

    def __init__(self, address: ImapAddress, password: str, insecure: bool = False, timeout_s: float = 60):
        self.address, self._password, self.insecure, self.timeout_s = address, password, insecure, timeout_s
        self.client = None
        self.uidvalidity, self.keywords = 0, False

    @property
    def name(self) -> str:
        """The folder's identity in the state store."""
        return f"{self.address.user}@{self.address.server}/{self.address.folder}"

    def open(self, drafts: str | None = None, escalate_folder: str | None = None) -> str:
        """Connect, log in, check the folders and select the one to read; returns the drafts folder (default:
        the server's special-use \\Drafts folder, else 'Drafts'). A missing drafts or escalation folder is
        created; a missing folder to read is an error."""
        self.close()
        self.client = self._connect()
        try:
            return self._check_folders(drafts, escalate_folder)
        except BaseException:
            self.close()
            raise

    def _check_folders(self, drafts: str | None, escalate_folder: str | None) -> str:
        with self._errors("checking the folders"):
            drafts = drafts or self.client.find_special_folder(rb"\Drafts") or "Drafts"
            if not self.client.folder_exists(self.address.folder):
                names = sorted(name for *_, name in self.client.list_folders())
                raise AgentError(f"{self.address.server}: no IMAP folder '{self.address.folder}' for "
                                 f"{self.address.user} (folders: {', '.join(names)[:300]})")
            for folder in (drafts, escalate_folder):
                if folder == self.address.folder:
                    raise AgentError(f"the drafts and escalation folders must differ from the folder read "
                                     f"('{folder}')")
                if folder and not self.client.folder_exists(folder):
                    self.client.create_folder(folder)
                    logs.event(log, "imap_folder_created", folder=folder)
            self._select()
        return drafts

    def _connect(self):
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        where, context = self.address.server, tls_context(self.insecure)
        try:
            client = IMAPClient(self.address.host, self.address.port, ssl=self.address.scheme == "imaps",
                                ssl_context=context, timeout=self.timeout_s)
        except ssl.SSLCertVerificationError as exc:
            raise AgentError(self._untrusted(exc)) from None
        except (OSError, IMAPClientError) as exc:
            detail = getattr(exc, "strerror", None) or _server_text(exc)
            raise ConnectionLost(f"cannot connect to the IMAP server {where} ({detail})") from None
        try:
            if self.address.scheme == "imap":
                self._starttls(client, context)
            client.login(self.address.user, self._password)
        except ssl.SSLCertVerificationError as exc:
            client.shutdown()
            raise AgentError(self._untrusted(exc)) from None
        except LoginError as exc:
            client.shutdown()
            raise AgentError(f"{where}: login refused for {self.address.user} ({_server_text(exc)})") from None
        except AgentError:
            client.shutdown()
            raise
        except (OSError, IMAPClientError) as exc:
            client.shutdown()
            raise ConnectionLost(f"{where}: connection lost while logging in ({_server_text(exc)})") from None
        return client

    def _starttls(self, client, context) -> None:
        if client.has_capability("STARTTLS"):
            client.starttls(context)
        elif not is_loopback(client.socket().getpeername()[0]):
            raise AgentError(f"{self.address.server} offers no STARTTLS: plain text (the password in the clear) "
                             "is allowed only to a loopback address; use imaps:// or a server with STARTTLS")
        else:
            logs.event(log, "imap_plain_text", server=self.address.server)

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        return (f"{self.address.server}: the server's TLS certificate cannot be trusted ({exc.verify_message}); "
                "--insecure accepts a self-signed certificate")

    def _select(self) -> None:
        info = self.client.select_folder(self.address.folder)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.keywords = b"\\*" in info.get(b"PERMANENTFLAGS", ())

    @contextlib.contextmanager
    def _errors(self, doing: str):
        """IMAP failures as AgentErrors; a dropped connection as ConnectionLost."""
        from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

        where = self.address.server
        try:
            yield
        except (IMAPClientAbortError, OSError, EOFError) as exc:
            self.close()
            raise ConnectionLost(f"{where}: connection lost while {doing} ({_server_text(exc)})") from None
        except IMAPClientError as exc:
            raise AgentError(f"{where}: {doing} failed ({_server_text(exc)})") from None

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                client.logout()
            except Exception:  # the connection is gone already
                with contextlib.suppress(Exception):
                    client.shutdown()

    @property
    def connected(self) -> bool:
        return self.client is not None

    # The folder read -----------------------------------------------------------------------------------
    def uids(self, after: int = 0) -> list[int]:
        """The folder's UIDs above ``after``, in order (a watcher lists only what came since its last look)."""
        with self._errors("listing messages"):
            found = self.client.search(["UID", f"{after + 1}:*"] if after else "ALL")
        return sorted(uid for uid in found if uid > after)  # "N:*" names the last message even below N

    def fetch(self, uid: int) -> Item | None:
        """The message, without marking it read (BODY.PEEK), capped at the channel's size limit; None when
        it is no longer there (expunged by another client)."""
        cap = email_parse.MAX_MESSAGE_BYTES + 1  # one byte over tells the channel it is too large
        with self._errors("fetching a message"):
            data = self.client.fetch([uid], ["RFC822.SIZE", f"BODY.PEEK[]<0.{cap}>"]).get(uid)
        if not data:
            return None
        raw = next((v for k, v in data.items() if k.startswith(b"BODY[]")), None) or b""
        item = read_bytes(raw, f"imap:{self.address.folder};UIDVALIDITY={self.uidvalidity};UID={uid}")
        item.size = max(item.size, int(data.get(b"RFC822.SIZE", 0)))
        return item

    def finish(self, uid: int, flags: tuple[bytes, ...], move_to: str | None = None) -> None:
        """Set ``flags`` on the message and, if asked, move it (MOVE, else COPY, \\Deleted and UID EXPUNGE)."""
        with self._errors("flagging a message"):
            if not self.keywords:
                flags = tuple(f for f in flags if f.startswith(b"\\"))
            if flags:
                self.client.add_flags([uid], flags, silent=True)
            if move_to and self.client.has_capability("MOVE"):
                self.client.move([uid], move_to)
            elif move_to:
                self.client.copy([uid], move_to)
                self.client.add_flags([uid], [b"\\Deleted"], silent=True)
                if self.client.has_capability("UIDPLUS"):  # else left marked deleted: EXPUNGE would take others'
                    self.client.uid_expunge([uid])

    # The drafts folder ---------------------------------------------------------------------------------
    def append(self, folder: str, raw: bytes) -> int | None:
        """Store a draft in ``folder``; returns its UID where the server says it (UIDPLUS)."""
        with self._errors(f"storing a draft in '{folder}'"):
            response = self.client.append(folder, raw, flags=DRAFT_FLAGS)
        found = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
        return int(found.group(1)) if found else None

    def find(self, folder: str, message_id: str) -> int | None:
        """The UID of the message in ``folder`` with this Message-ID, or None."""
        with self._errors(f"searching '{folder}'"):
            self.client.select_folder(folder, readonly=True)
            try:
                found = self.client.search(["HEADER", "Message-ID", message_id])
            finally:
                self._select()
        return min(found) if found else None

    # Waiting for new mail ------------------------------------------------------------------------------
    @property
    def idles(self) -> bool:
        return self.client.has_capability("IDLE")

    def wait(self, poll_s: float, stopped: Callable[[], bool]) -> None:
        """Return when new mail may have arrived: at the server's word where it has IDLE, else after
        ``poll_s`` seconds; or as soon as ``stopped()`` (checked every second)."""
        if not self.idles:
            sleep_unless(stopped, poll_s)
            with self._errors("polling"):
                self.client.noop()
            return
        # A message that arrives while a command runs is announced (EXISTS) only at some later command's end,
        # and Dovecot announces nothing at IDLE's start: ask with a NOOP first. imaplib keeps announcements
        # that no command asked for (the last pass's may be among them); one there means look again now.
        with self._errors("asking for new mail"):
            self.client.noop()
        if self.client._imap.untagged_responses.pop("EXISTS", None):
            return
        with self._errors("waiting for new mail"):
            self.client.idle()
            try:
                end = time.monotonic() + IDLE_RENEW_S
                while not stopped() and time.monotonic() < end:
                    began = time.monotonic()
                    responses = self.client.idle_check(timeout=1)
                    if any(r[:1] == (b"BYE",) for r in responses):
                        raise ConnectionLost(f"{self.address.server}: the server closed the connection")
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        return
                    if not responses and time.monotonic() - began < 0.5:
                        return  # readable yet nothing to read: the connection closed; IDLE's end will tell
            finally:
                if self.client is not None:
                    self.client.idle_done()
