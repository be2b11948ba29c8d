"""IMAP: a 1,000-message folder through ``support-agent email --imap``, watch latency, and kills mid-run, against
a real Dovecot server on 127.0.0.1 (tests/dovecot.py: needs root and Debian's dovecot-imapd, which
scripts/setup.sh installs).

    .venv/bin/python bench/imap.py [--messages 1000] [--repeats 3] [--latency 20] [--kills 10] [--kill-messages 200]

Throughput: the generated mailbox of bench/email_channel.py (customer emails in many charsets and formats,
machine mail, loops, duplicates, malformed messages), appended to a fresh account's INBOX for each run; then
the whole command as a user runs it (process start and model loading included), against the obvious
alternative, ``support-agent email --mbox`` on the same messages into a Maildir, alternating, median of
``--repeats`` each. Target: 1,000 messages, drafts appended, in at most 5 minutes.

Watch latency: a watcher (``--watch``) on a folder; a message is appended every 1 to 2 s, and the time from
the APPEND's completion to the draft's arrival in the drafts folder (a second connection looks every 10 ms)
is taken. IDLE (Dovecot as shipped) against polling (a Dovecot that announces no IDLE; the default 3 s).
Target: 5 s.

Kills: ``--kill-messages`` messages; the command is killed with SIGKILL ``--kills`` times at random points
(after a random number of answered messages and a random fraction of a second), restarted each time, then
run to the end. Its drafts are compared with those of one uninterrupted run on the same messages in another
account: drafts answering a message twice (duplicates), answered messages without a draft (losses), and
messages of the folder not finished. Target: 0 and 0.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import imaplib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from dovecot import PASSWORD, Dovecot  # noqa: E402
from email_channel import customer, generate  # noqa: E402

CLI = [sys.executable, "-m", "channels.cli", "email"]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "SUPPORT_AGENT_IMAP_PASSWORD": PASSWORD}


def account(server: Dovecot, name: str, messages: list[bytes]) -> str:
    """A fresh account holding ``messages`` in its INBOX; returns its user name."""
    user = f"{name}@kestrel.example"
    server.add_user(user, PASSWORD)
    client = server.client(user)
    for raw in tqdm(messages, desc=f"appending to {name}", unit="msg", leave=False):
        client.append("INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    client.logout()
    return user


def drafts(server: Dovecot, user: str) -> list[str]:
    """The key each draft in the account's Drafts folder answers (one entry per draft)."""
    keys = []
    for _, _, raw in server.messages("Drafts", user):
        keys.append(str(email.message_from_bytes(raw, policy=email.policy.default)["X-Support-Agent-Key"]).strip())
    return keys


def timed(args: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(args[3:])} failed: {proc.stderr.decode()[-500:]}")
    return seconds, proc.stderr.decode().strip().splitlines()[-1]


def throughput(server: Dovecot, messages: list[bytes], mbox: Path, repeats: int, work: Path, env: dict) -> None:
    imap_s, mbox_s, lines = [], [], []
    for run in range(repeats):
        user = account(server, f"bench{run}", messages)
        seconds, summary = timed([*CLI, "--imap", server.url(user=user), "--insecure",
                                  "--state", str(work / f"imap{run}.sqlite")], env)
        imap_s.append(seconds)
        lines.append(f"  imap run {run + 1}: {seconds:.1f} s, {len(drafts(server, user))} drafts in Drafts; {summary}")
        seconds, summary = timed([*CLI, "--mbox", str(mbox), "--outbox", str(work / f"outbox{run}")], env)
        mbox_s.append(seconds)
        lines.append(f"  mbox run {run + 1}: {seconds:.1f} s; {summary}")
    n = len(messages)
    print(f"\nthroughput, {n} messages, the whole command (start and model loading included), median of {repeats}:")
    print("\n".join(lines))
    for name, runs, target in (("--imap, drafts appended to Drafts", imap_s, "   (target: at most 300 s)"),
                               ("--mbox, drafts into a Maildir", mbox_s, "")):
        median = statistics.median(runs)
        print(f"  {name:<36}{median:7.1f} s  {n / median:6.1f} msg/s{target}")


def latency(server: Dovecot, count: int, work: Path, env: dict, label: str, rng: random.Random) -> None:
    name = f"watch{len(server.users)}"
    user = account(server, name, [])
    watcher = subprocess.Popen([*CLI, "--imap", server.url(user=user), "--insecure", "--watch",
                                "--state", str(work / f"{name}.sqlite")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    sender, monitor = server.client(user), server.client(user)

    def arrive(i: int) -> float:
        before = drafts_count(monitor)
        sender.append("INBOX", None, None, customer(rng, 100_000 + i).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        start = time.perf_counter()
        while drafts_count(monitor) == before:
            if time.perf_counter() - start > 60 or watcher.poll() is not None:
                sys.exit(f"bench: no draft within 60 s ({label}): {watcher.stderr.read().decode()[-500:]}")
            time.sleep(0.01)
        return time.perf_counter() - start

    try:
        first = arrive(-1)  # the watcher starts and loads its models
        seconds = []
        for i in tqdm(range(count), desc=f"watch latency ({label})", unit="msg", leave=False):
            time.sleep(rng.uniform(1, 2))
            seconds.append(arrive(i))
        stop = time.perf_counter()
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
        stop = time.perf_counter() - stop
    finally:
        if watcher.poll() is None:
            watcher.kill()
        sender.logout()
        monitor.logout()
    seconds.sort()
    print(f"  {label:<34}median {statistics.median(seconds):5.2f} s, p90 {seconds[int(0.9 * (len(seconds) - 1))]:5.2f}"
          f" s, max {seconds[-1]:5.2f} s over {count} (the first, with model loading: {first:.1f} s; "
          f"SIGTERM to exit {stop:.1f} s, status {watcher.returncode})")


def drafts_count(client: imaplib.IMAP4) -> int:
    typ, data = client.status("Drafts", "(MESSAGES)")
    return int(data[0].decode().rsplit("MESSAGES", 1)[1].strip(" )"))


def kills(server: Dovecot, messages: list[bytes], count: int, work: Path, env: dict, rng: random.Random) -> None:
    reference = account(server, "reference", messages)
    timed([*CLI, "--imap", server.url(user=reference), "--insecure", "--state", str(work / "reference.sqlite")], env)
    user = account(server, "killed", messages)
    args = [*CLI, "--imap", server.url(user=user), "--insecure", "--state", str(work / "killed.sqlite")]
    done = 0
    for _ in tqdm(range(count), desc="kills", unit="kill", leave=False):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        for _ in range(rng.randint(1, 25)):  # answered messages before the kill
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is not None:
            break  # the folder was finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done += 1
    timed(args, env)
    expected, found = drafts(server, reference), drafts(server, user)
    duplicates = len(found) - len(set(found))
    lost = len(set(expected) - set(found))
    extra = len(set(found) - set(expected))
    unfinished = len(messages) - finished_messages(work / "killed.sqlite")
    print(f"\nkills: {len(messages)} messages, {done} SIGKILLs at random points, then a run to the end:")
    print(f"  drafts {len(found)} (uninterrupted run: {len(expected)}); duplicates {duplicates}, losses {lost}, "
          f"drafts for no expected answer {extra}, messages not finished {unfinished}"
          "   (target: 0 duplicates, 0 losses)")


def finished_messages(state: Path) -> int:
    import sqlite3

    with sqlite3.connect(state) as db:
        return db.execute("SELECT COUNT(*) FROM folder_done").fetchone()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="runs of each command for throughput (median reported)")
    p.add_argument("--latency", type=int, default=20, help="messages timed in watch mode, for IDLE and for polling")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--kill-messages", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    from channels import mailstore

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp:
        work = Path(tmp)
        env = environment()
        mbox = work / "mailbox.mbox"
        kinds = generate(mbox, args.messages, args.seed)
        messages = [item.raw for item in mailstore.read_mbox(mbox)]
        print(f"mailbox: {len(messages)} messages ({', '.join(f'{v} {k}' for k, v in kinds.items())})")
        server = Dovecot().start()
        try:
            throughput(server, messages, mbox, args.repeats, work, env)
            print(f"\nwatch latency, APPEND to draft in Drafts, {args.latency} messages, one every 1-2 s:")
            latency(server, args.latency, work, env, "IDLE", rng)
        finally:
            server.close()
        polling = Dovecot(idle=False).start()
        try:
            latency(polling, args.latency, work, env, "polling (no IDLE, every 3 s)", rng)
        finally:
            polling.close()
        server = Dovecot().start()
        try:
            kills(server, messages[:args.kill_messages], args.kills, work, env, rng)
        finally:
            server.close()


if __name__ == "__main__":
    main()
