"""IMAP in, drafts back in the team's mail client: ``support-agent email --imap`` against a real Dovecot
server on 127.0.0.1 (tests/dovecot.py), read back with a plain IMAP client (the standard library's imaplib)."""
import email
import email.policy
import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.types import AgentError
from channels import imap, mailstore
from channels.imap_runner import ImapOptions, ImapOutbox, ImapRunner
from conftest import CLI, REPO, cli_environment, one_line_error, run_cli
from dovecot import PASSWORD, USER, Dovecot, free_port
from test_mailbox import ANSWERED, BROKEN_MIME, NO_ID, PIN, QUOTED, mail

REQUESTS = ["I ordered a new bank card two weeks ago, but it still has not arrived.",
            "How do I change my PIN? I would like to change the PIN of my card.",
            "I forgot my passcode and cannot log in to the app.",
            "what is the meaning of life and the weather on mars"]  # escalated: out of scope


@pytest.fixture
def dovecot():
    try:
        server = Dovecot().start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.close()


@pytest.fixture
def imap_env(cli_env) -> dict:
    return {**cli_env, imap.PASSWORD_ENV: PASSWORD}


def requests(prefix: str, n: int) -> list[bytes]:
    return [mail(f"Customer {i} <c{i}@example.org>", f"Question {i}", REQUESTS[i % len(REQUESTS)],
                 f"<{prefix}-{i}@example.org>") for i in range(n)]


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def drafts_by_key(server: Dovecot, folder: str = "Drafts") -> dict:
    """The drafts in ``folder`` by the key of the message each answers; fails on a second draft for a key."""
    found = {}
    for _, flags, raw in server.messages(folder):
        msg = parsed(raw)
        key = str(msg["X-Support-Agent-Key"]).strip()  # a long key is folded onto the next line
        assert key not in found, f"two drafts answer {key}"
        assert "\\Draft" in flags, flags
        found[key] = msg
    return found


def lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


def email_imap(server: Dovecot, tmp_path: Path, *extra: str, url: str | None = None) -> list[str]:
    return [*CLI, "email", "--imap", url or server.url(), "--insecure", "--state", str(tmp_path / "state.sqlite"),
            *extra]


def test_drafts_are_threaded_in_drafts_and_escalations_flagged_and_moved(dovecot, imap_env, tmp_path):
    john = mail("John Doe <john@example.com>", "Re: RE: Card not arrived", QUOTED, "<c1@example.com>",
                headers={"References": "<older@kestrel.example>", "In-Reply-To": "<older@kestrel.example>"})
    inbox = [
        (john, "answered"),
        (mail("Carl <carl@example.org>", "Hi", REQUESTS[3], "<oos-1@example.org>"), "escalated"),
        (mail("Bob <bob@example.org>", "Out of office", "I am away.", "<ooo-1@example.org>",
              headers={"Auto-Submitted": "auto-replied"}), "skipped"),
        # The account's own address (the IMAP user), though our From here is another address: a loop.
        (mail(USER, "Fwd: Card", "Forwarded to ourselves. My card has not arrived.", "<loop-1@kestrel.example>"),
         "skipped"),
        (mail("Desk <desk@kestrel.example>", "Card", "My card has not arrived.", "<loop-2@kestrel.example>",
              headers={"Delivered-To": "desk@kestrel.example"}), "skipped"),
        (NO_ID, "answered"),
        (NO_ID, "duplicate"),
        (BROKEN_MIME, "rejected"),
    ]
    dovecot.deliver([raw for raw, _ in inbox])
    args = email_imap(dovecot, tmp_path, "--outbox-imap", "Drafts", "--escalate-folder", "Escalated",
                      "--from", "Kestrel Help <help@kestrel.example>")
    debug = cli_environment({**imap_env, "SUPPORT_AGENT_LOG_LEVEL": "DEBUG"})
    first = subprocess.run(args, capture_output=True, env=debug, cwd=REPO, timeout=300)
    assert first.returncode == 0, first.stderr.decode()
    assert PASSWORD.encode() not in first.stdout + first.stderr
    results = lines(first)
    assert [r["action"] in ANSWERED if want == "answered" else r["action"] == want
            for r, (_, want) in zip(results, inbox, strict=True)] == [True] * len(inbox), results
    assert "our own message" in results[3]["reason"] and "loop" in results[4]["reason"]
    assert all(r["source"].startswith("imap:INBOX;UIDVALIDITY=") for r in results)
    assert results[1]["moved_to"] == "Escalated" and results[1]["draft"].startswith("imap:Drafts;UID=")
    assert first.stderr.decode().strip().splitlines()[-1].endswith("drafts in Drafts")

    drafts = drafts_by_key(dovecot)
    assert sorted(drafts) == sorted(r["key"] for r in results if r["draft"])
    reply = drafts["<c1@example.com>"]
    assert reply["In-Reply-To"] == "<c1@example.com>" and reply["Subject"] == "Re: Card not arrived"
    assert reply["References"] == "<older@kestrel.example> <c1@example.com>" and "john@example.com" in reply["To"]
    assert reply["From"] == "Kestrel Help <help@kestrel.example>"
    assert "> I ordered a new bank card" in reply.get_content()
    assert "passed your message" in drafts["<oos-1@example.org>"].get_content()

    flags = {parsed(raw)["Message-ID"]: f for _, f, raw in dovecot.messages("INBOX")}
    assert "<oos-1@example.org>" not in flags  # moved
    (escalated,) = dovecot.messages("Escalated")
    assert {"\\Flagged", "$Escalated"} <= escalated[1] and "\\Seen" not in escalated[1]
    assert "\\Seen" in flags["<c1@example.com>"] and "\\Seen" in flags["<ooo-1@example.org>"]
    assert "\\Seen" not in flags["<broken-1@example.org>"]  # rejected: left for a person

    dovecot.deliver([PIN])  # a rerun reads only what came since
    again = subprocess.run(args, capture_output=True, env=cli_environment(imap_env), cwd=REPO, timeout=300)
    (new,) = lines(again)
    assert new["key"] == "<pin-1@example.org>" and new["action"] == "replied" and "1 message" in again.stderr.decode()
    assert len(drafts_by_key(dovecot)) == len(drafts) + 1


def test_killed_mid_run_and_restarted_answers_every_message_once(dovecot, imap_env, tmp_path):
    messages = requests("kill", 120)
    dovecot.deliver(messages)
    args = email_imap(dovecot, tmp_path)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_environment(imap_env),
                            cwd=REPO)
    before = [json.loads(proc.stdout.readline()) for _ in range(5)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before += [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]
    assert 5 <= len(before) < 120

    after = lines(subprocess.run(args, capture_output=True, env=cli_environment(imap_env), cwd=REPO, timeout=300))
    answered = [r["key"] for r in before + after if r["action"] != "duplicate"]
    assert sorted(answered) == sorted(f"<kill-{i}@example.org>" for i in range(120)), "lost or answered twice"
    drafts = drafts_by_key(dovecot)
    assert sorted(drafts) == sorted(answered) and all(d["In-Reply-To"] == k for k, d in drafts.items())
    assert all({"\\Seen", "\\Flagged"} & flags for _, flags, _ in dovecot.messages("INBOX"))
    rerun = subprocess.run(args, capture_output=True, env=cli_environment(imap_env), cwd=REPO, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout == b""


def test_a_run_stopped_between_append_and_record_finds_its_draft(agent, dovecot, tmp_path):
    def killed(*args):  # the process dies after the draft is appended, before its key is recorded
        raise RuntimeError("killed")

    dovecot.deliver(requests("crash", 1))
    mailbox = imap.ImapMailbox(imap.ImapAddress.parse(dovecot.url()), PASSWORD, insecure=True)
    drafts = mailbox.open()
    with mailstore.StateStore(tmp_path / "state.sqlite") as state:
        state.record = killed
        runner = mailstore.Runner(agent, ImapOutbox(mailbox, state, drafts), state)
        with pytest.raises(RuntimeError, match="killed"):
            list(ImapRunner(mailbox, runner, ImapOptions()).results())
    assert len(dovecot.messages("Drafts")) == 1
    with mailstore.StateStore(tmp_path / "state.sqlite") as state:
        runner = mailstore.Runner(agent, ImapOutbox(mailbox, state, drafts), state)
        (result,) = ImapRunner(mailbox, runner, ImapOptions()).results()
    mailbox.close()
    assert result.action in ANSWERED and result.draft == f"imap:Drafts;UID={dovecot.messages('Drafts')[0][0]}"
    assert len(dovecot.messages("Drafts")) == 1


class Watcher:
    """``support-agent email --imap ... --watch`` in the background, its JSON lines read as they come."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_environment(env),
                                     cwd=REPO)
        self.lines: queue.Queue = queue.Queue()
        self.logged: list[str] = []  # its stderr, line by line, as it comes
        self.stderr_done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.logged.append(line.decode(errors="replace"))
        self.stderr_done.set()

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 60) -> None:
        """Wait until ``text`` is in ``count`` lines of its stderr."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in list(self.logged)) < count:
            assert time.monotonic() < deadline and self.proc.poll() is None, f"never logged {text} {count} times"
            time.sleep(0.05)

    def next(self, timeout: float = 120) -> dict:
        return self.lines.get(timeout=timeout)

    def stop(self, signum: int, timeout: float = 60) -> str:
        """Send ``signum``; returns stderr once the process has exited."""
        self.proc.send_signal(signum)
        self.proc.wait(timeout=timeout)
        self.stderr_done.wait(timeout)
        return "".join(self.logged)

    def rest(self) -> list[dict]:
        found = []
        while not self.lines.empty():
            found.append(self.lines.get())
        return found

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_a_message_arriving_just_before_idle_wakes_the_watcher_at_once(dovecot):
    # Dovecot announces nothing at IDLE's start: mail delivered between a pass's last command and IDLE
    # would wait for the server's next keepalive (minutes) without the NOOP that the wait begins with.
    mailbox = imap.ImapMailbox(imap.ImapAddress.parse(dovecot.url()), PASSWORD, insecure=True)
    mailbox.open()
    try:
        assert mailbox.uids() == []
        mailbox.wait(0, lambda: False)  # the announcement kept from SELECT: a pass at once
        assert mailbox.uids() == []
        dovecot.deliver(requests("idle", 1))
        began = time.monotonic()
        mailbox.wait(0, lambda: time.monotonic() - began > 20)
        assert time.monotonic() - began < 5 and mailbox.uids() == [1]
    finally:
        mailbox.close()


def test_watch_goes_on_after_a_server_restart_and_stops_cleanly_on_sigterm(dovecot, imap_env, tmp_path):
    watcher = Watcher(email_imap(dovecot, tmp_path, "--watch"), imap_env)
    try:
        dovecot.deliver(requests("first", 1))
        assert watcher.next()["key"] == "<first-0@example.org>"
        dovecot.restart()  # the server says BYE and goes; the watcher reconnects with backoff
        dovecot.deliver(requests("second", 1))
        assert watcher.next()["key"] == "<second-0@example.org>"
        dovecot.stop(crash=True)  # the connection simply drops, and the server is away for a while:
        watcher.wait_for_log("imap_connection_lost", count=2)  # the drop noticed, and a reconnection refused
        dovecot.start()
        dovecot.deliver(requests("third", 1))
        assert watcher.next()["key"] == "<third-0@example.org>"
        dovecot.deliver(requests("batch", 200))
        printed = [watcher.next()]
        stderr = watcher.stop(signal.SIGTERM)
    finally:
        watcher.kill()
    printed += watcher.rest()
    assert watcher.proc.returncode == 0 and stderr.strip().splitlines()[-1].endswith("stopped by SIGTERM"), stderr
    assert stderr.count("imap_connection_lost") >= 2 and PASSWORD not in stderr
    # The message in hand was finished: every printed answer has its draft, and no draft lacks its line.
    printed_keys = {r["key"] for r in printed if r["action"] in ANSWERED}
    assert set(drafts_by_key(dovecot)) == printed_keys | {f"<{n}-0@example.org>" for n in ("first", "second", "third")}
    assert len(printed) < 200
    rest = lines(subprocess.run(email_imap(dovecot, tmp_path), capture_output=True, env=cli_environment(imap_env),
                                cwd=REPO, timeout=300))
    assert sorted(r["key"] for r in printed + rest) == sorted(f"<batch-{i}@example.org>" for i in range(200))
    assert len(drafts_by_key(dovecot)) == 203


def test_watch_polls_a_server_without_idle_in_plain_text_on_loopback_and_stops_on_sigint(imap_env, tmp_path):
    server = Dovecot(idle=False, tls=False).start()
    try:
        mailbox = imap.ImapMailbox(imap.ImapAddress.parse(server.url(scheme="imap")), PASSWORD)
        mailbox.open()
        assert not mailbox.idles and mailbox.client.socket().getpeername()[0] == "127.0.0.1"
        mailbox.close()
        args = [*CLI, "email", "--imap", server.url(scheme="imap"), "--watch", "--poll-interval", "0.5",
                "--state", str(tmp_path / "state.sqlite")]
        watcher = Watcher(args, imap_env)
        try:
            server.deliver(requests("poll", 1))
            assert watcher.next()["key"] == "<poll-0@example.org>"
            server.deliver(requests("poll-again", 1))
            assert watcher.next()["key"] == "<poll-again-0@example.org>"
            stderr = watcher.stop(signal.SIGINT)
        finally:
            watcher.kill()
        assert watcher.proc.returncode == 0 and "stopped by SIGINT" in stderr, stderr
        assert len(drafts_by_key(server)) == 2
    finally:
        server.close()


def test_bad_credentials_folders_and_servers_are_one_line_errors(dovecot, imap_env, tmp_path):
    def error(*args, env=imap_env):
        return one_line_error(run_cli("email", *args, "--state", str(tmp_path / "state.sqlite"), env=env))

    assert "no IMAP folder 'Nope'" in error("--imap", dovecot.url("Nope"), "--insecure")
    assert "cannot connect to the IMAP server" in error("--imap", f"imaps://{USER}@127.0.0.1:{free_port()}/INBOX")
    assert "cannot connect" in error("--imap", f"imaps://{USER}@127.0.0.1:{free_port()}/INBOX", "--watch")
    untrusted = error("--imap", dovecot.url())
    assert "certificate cannot be trusted" in untrusted and "--insecure" in untrusted
    in_url = error("--imap", f"imaps://me:{PASSWORD}@127.0.0.1:{dovecot.imaps_port}/INBOX", "--insecure")
    assert "does not belong in the URL" in in_url and PASSWORD not in in_url
    assert "no password for" in error("--imap", dovecot.url(), "--insecure",
                                      env={**imap_env, imap.PASSWORD_ENV: "", "NETRC": str(tmp_path / "none")})
    assert "never taken from the command line" in one_line_error(
        run_cli("--set", f"imap_password={PASSWORD}", "email", "--imap", dovecot.url(), env=imap_env))
    assert "works only with --imap" in error("-", "--watch")
    assert "does not go with --imap" in error("--imap", dovecot.url(), "--outbox", str(tmp_path))
    assert "the drafts and escalation folders must differ" in error("--imap", dovecot.url(), "--insecure",
                                                                    "--outbox-imap", "INBOX")
    refused = error("--imap", dovecot.url(), "--insecure", env={**imap_env, imap.PASSWORD_ENV: "wrong"})
    assert "login refused for support@kestrel.example" in refused and "wrong" not in refused


def test_certificates_are_verified_and_plain_text_only_goes_to_loopback(dovecot, monkeypatch):
    address = imap.ImapAddress.parse(dovecot.url())
    with pytest.raises(AgentError, match="certificate cannot be trusted"):
        imap.ImapMailbox(address, PASSWORD).open()
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.certificate))  # now a trusted certificate: verified, accepted
    for url in (dovecot.url(), dovecot.url(scheme="imap")):  # TLS from the start, and STARTTLS
        mailbox = imap.ImapMailbox(imap.ImapAddress.parse(url), PASSWORD)
        assert mailbox.open() == "Drafts" and mailbox.client.socket().version().startswith("TLS")
        mailbox.close()

    plain = Dovecot(tls=False).start()
    try:
        monkeypatch.setattr(imap, "is_loopback", lambda ip: False)  # as if the server were elsewhere
        with pytest.raises(AgentError, match="offers no STARTTLS: plain text .* only to a loopback address"):
            imap.ImapMailbox(imap.ImapAddress.parse(plain.url(scheme="imap")), PASSWORD).open()
    finally:
        plain.close()
    monkeypatch.undo()
    assert [imap.is_loopback(ip) for ip in ("127.0.0.1", "127.8.0.3", "::1", "::ffff:127.0.0.1", "10.0.0.1",
                                            "192.168.1.2", "2001:db8::1", "not an ip")] == [True] * 4 + [False] * 4


@pytest.mark.parametrize("url, expected", [
    ("imaps://support@kestrel.example@mail.example.org/INBOX",
     ("imaps", "support@kestrel.example", "mail.example.org", 993, "INBOX")),
    ("imap://desk%40bank.example@[::1]:1143/Support/Open", ("imap", "desk@bank.example", "::1", 1143, "Support/Open")),
    ("imaps://anna@mail.example.org", ("imaps", "anna", "mail.example.org", 993, "INBOX")),
    ("imaps://anna@mail.example.org:994/Caf%C3%A9", ("imaps", "anna", "mail.example.org", 994, "Café")),
])
def test_imap_urls(url, expected):
    address = imap.ImapAddress.parse(url)
    assert (address.scheme, address.user, address.host, address.port, address.folder) == expected


@pytest.mark.parametrize("url, message", [
    ("pop3://anna@mail.example.org/INBOX", "imaps://USER@HOST"),
    ("imaps://mail.example.org/INBOX", "imaps://USER@HOST"),
    ("imaps://anna@mail.example.org:99999/INBOX", "out of range"),
    ("imaps://anna:hunter2@mail.example.org/INBOX", "does not belong in the URL"),
])
def test_bad_imap_urls(url, message):
    with pytest.raises(AgentError, match=message) as caught:
        imap.ImapAddress.parse(url)
    assert "hunter2" not in str(caught.value)


def test_the_password_comes_from_the_environment_netrc_or_a_private_settings_file(tmp_path):
    address = imap.ImapAddress.parse("imaps://desk@mail.example.org/INBOX")
    none, netrc = {"NETRC": str(tmp_path / "missing")}, tmp_path / "netrc"
    assert imap.password(address, Settings(), None, {imap.PASSWORD_ENV: "from-env", **none}) == "from-env"

    netrc.write_text("machine mail.example.org login desk password from-netrc\n")
    netrc.chmod(0o600)
    assert imap.password(address, Settings(), None, {"NETRC": str(netrc)}) == "from-netrc"
    netrc.chmod(0o644)
    with pytest.raises(AgentError, match="other users may read it .*chmod 600"):
        imap.password(address, Settings(), None, {"NETRC": str(netrc)})
    netrc.write_text("machine mail.example.org login someone-else password theirs\n")
    netrc.chmod(0o600)
    with pytest.raises(AgentError, match="no password for desk at mail.example.org"):
        imap.password(address, Settings(), None, {"NETRC": str(netrc)})

    config = tmp_path / "support-agent.toml"
    config.write_text('imap_password = "from-file"\n')
    config.chmod(0o600)
    settings = Settings.load(config, env={})
    assert "from-file" not in repr(settings)
    assert imap.password(address, settings, config, none) == "from-file"
    config.chmod(0o640)
    with pytest.raises(AgentError, match="other users may read it"):
        imap.password(address, settings, config, none)


def test_an_oversized_message_is_fetched_only_up_to_the_cap(dovecot, monkeypatch):
    from channels import email_parse

    dovecot.deliver([mail("Anna <anna@example.org>", "Statement", "x" * 50_000, "<big-1@example.org>")])
    monkeypatch.setattr(email_parse, "MAX_MESSAGE_BYTES", 10_000)
    mailbox = imap.ImapMailbox(imap.ImapAddress.parse(dovecot.url()), PASSWORD, insecure=True)
    mailbox.open()
    (uid,) = mailbox.uids()
    item = mailbox.fetch(uid)
    mailbox.close()
    assert item.raw is None and item.size > 50_000 and item.key == "<big-1@example.org>"
    assert not dovecot.messages("INBOX")[0][1] & {"\\Seen"}  # fetching marks nothing read
