"""A real Dovecot IMAP server on 127.0.0.1 for the tests and benchmarks: Debian's dovecot-imapd
(installed by scripts/setup.sh), run from a configuration in a temporary folder, with Maildir storage,
passwd-file users and a self-signed certificate made here.

Dovecot refuses to run its login process as root: the login process runs as ``dovenull`` and mail
is stored as ``dovecot`` (Debian's users), so this needs root, as the test machines run.
"""
from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "support@kestrel.example", "correct horse battery staple"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid=dovecot gid=dovecot home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  {imaps}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""
# A server without IDLE (the capability list it announces after login, less IDLE).
NO_IDLE = ("imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT THREAD=REFERENCES MULTIAPPEND "
           "UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 ESEARCH SEARCHRES WITHIN "
           "LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """One Dovecot server; ``start()``, ``stop()``, ``restart()``; ``url()`` for the agent, ``client()`` to
    read and write the mailbox with the standard library's imaplib."""

    def __init__(self, idle: bool = True, tls: bool = True):
        if os.geteuid() != 0:
            raise RuntimeError("the IMAP tests start Dovecot, which needs root here (its login process runs as "
                               "dovenull and mail is stored as dovecot)")
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(binary).exists():
            raise RuntimeError("Dovecot is not installed: run scripts/setup.sh as root (apt-get install dovecot-imapd)")
        self.binary, self.proc, self.tls = binary, None, tls
        self.root = Path(tempfile.mkdtemp(prefix="support-agent-dovecot-"))
        self.root.chmod(0o755)  # the mail and login processes run as other users
        self.imap_port, self.imaps_port = free_port(), free_port()
        self._certificate()
        (self.root / "home").mkdir()
        mail = pwd.getpwnam("dovecot")
        os.chown(self.root / "home", mail.pw_uid, mail.pw_gid)
        self.users: dict[str, str] = {}
        self.add_user(USER, PASSWORD)
        self.config = self.root / "dovecot.conf"
        imaps = f"inet_listener imaps {{\n    port = {self.imaps_port}\n    ssl = yes\n  }}" if tls else ""
        self.config.write_text(CONFIG.format(root=self.root, ssl="yes" if tls else "no", imaps=imaps,
                                             capability="" if idle else NO_IDLE, imap_port=self.imap_port))

    def _certificate(self) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem"),
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    def add_user(self, user: str, password: str) -> None:
        """Dovecot reads the passwd-file again when it changes."""
        self.users[user] = password
        lines = [f"{u}:{{PLAIN}}{p}::::" for u, p in self.users.items()]
        users = self.root / "users"
        users.write_text("\n".join(lines) + "\n")
        users.chmod(0o644)

    def start(self, timeout: float = 20) -> "Dovecot":
        # A session of its own: stopping the server stops every process of it, as stopping a service does
        # (Dovecot's own shutdown leaves running IMAP sessions alone).
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dovecot did not start: {self.proc.stderr.read().decode()[-500:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not listen within {timeout} s")
                time.sleep(0.05)

    def stop(self, crash: bool = False) -> None:
        """Stop the server and every session it serves: SIGTERM (each session says BYE), or with ``crash``
        SIGKILL (connections simply drop)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL if crash else signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the sessions end a moment after the master
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def restart(self, crash: bool = False) -> None:
        self.stop(crash)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, folder: str = "INBOX", user: str = USER, scheme: str = "imaps") -> str:
        port = self.imaps_port if scheme == "imaps" else self.imap_port
        return f"{scheme}://{user}@127.0.0.1:{port}/{folder}"

    def client(self, user: str = USER) -> imaplib.IMAP4:
        """A plain IMAP client (imaplib), logged in over TLS where the server has it (trusting its certificate)."""
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.certificate))
            client = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=context, timeout=30)
        else:
            client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        client.login(user, self.users[user])
        return client

    def deliver(self, messages: list[bytes], folder: str = "INBOX", user: str = USER) -> None:
        client = self.client(user)
        try:
            for raw in messages:
                typ, data = client.append(folder, None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                assert typ == "OK", data
        finally:
            client.logout()

    def messages(self, folder: str, user: str = USER) -> list[tuple[int, set[str], bytes]]:
        """(UID, flags, whole message) of every message in ``folder``, read without marking anything read."""
        client = self.client(user)
        try:
            typ, _ = client.select(f'"{folder}"', readonly=True)
            assert typ == "OK", f"no folder {folder}"
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            found = []
            for part in data:
                if isinstance(part, tuple):
                    head = part[0].decode()
                    uid = int(head.split("UID ")[1].split()[0])
                    flags = set(head.split("FLAGS (")[1].split(")")[0].split())
                    found.append((uid, flags, part[1]))
            return found
        finally:
            client.logout()
