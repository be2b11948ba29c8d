"""Email channel throughput: parsing and filtering alone, and the whole pipeline, on a generated mailbox.

    .venv/bin/python bench/email_channel.py [--messages 1000] [--repeats 3] [--full-repeats 1] [--keep DIR]

The mailbox (an mbox in a temporary folder) mixes customer emails in several charsets and formats
(plain, HTML only, multipart/alternative, quoted history, signatures, RFC 2047 headers) with
auto-replies, bounces, list mail, no-reply senders, our own replies looping back, duplicates and
malformed messages. "parse + filter" reads the mbox and runs parse, skip_reason and damage on each
message; "whole pipeline" is ``support-agent email --mbox`` in process: state store, intent, reply,
threaded drafts into a fresh outbox, models loaded before the clock starts. Targets: parse + filter
at least 200 messages/s; 1,000 messages through the whole pipeline in at most 5 minutes.
"""
from __future__ import annotations

import argparse
import mailbox
import random
import statistics
import sys
import tempfile
import time
from email.header import Header
from email.message import EmailMessage
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OWN = "Kestrel Bank Support <support@kestrel.example>"
REQUESTS = [
    "I ordered a new bank card two weeks ago, but it still has not arrived. Where is it?",
    "I was charged twice for the same payment of £{amount} at the café on {date}.",
    "How do I change my PIN? I would like to change the PIN of my card.",
    "My card was stolen yesterday, please block it straight away.",
    "I forgot my passcode and cannot log in to the app.",
    "How long does a transfer to another bank take?",
    "The cash machine kept my card this morning. What should I do?",
    "Why was I charged a fee of £{amount} for a payment in euros?",
    "I transferred £{amount} to my friend on {date} but the money has not arrived.",
    "How do I top up my account with a bank transfer?",
    "Can I get a virtual card for online shopping?",
    "My card payment was declined at the supermarket but I have money in my account.",
    "what is the weather like on mars today",  # out of scope: escalates
]
NAMES = ["Anna Smith", "José Álvarez", "Zoë Martin", "Jürgen Müller", "Søren Kierkegård", "Chloé Dubois",
         "Liam O'Brien", "Priya Patel", "Ołena Kowalska", "Mei Chen"]
CHARSETS = [("utf-8", "quoted-printable"), ("utf-8", "base64"), ("iso-8859-1", "quoted-printable"),
            ("windows-1252", "8bit"), ("utf-8", "8bit")]
SIGNATURES = ["\n\nKind regards,\n{name}", "\n\n-- \n{name}\nSent from my phone", "\n\nThanks,\n{name}",
              "\n\nSent from my iPhone", ""]
HISTORY = ("\n\nOn Mon, 16 Nov 2026 at 09:12, Kestrel Bank Support <support@kestrel.example> wrote:\n"
           "> Thank you for getting in touch.\n> Your card is on its way.\n")


def _base(rng: random.Random, i: int, sender: str, subject: str, charset: str = "utf-8") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = OWN
    msg["Subject"] = subject if charset == "utf-8" else Header(subject, charset).encode()
    msg["Date"] = f"Mon, {1 + i % 28:02d} Nov 2026 10:{i % 60:02d}:00 +0000"
    msg["Message-ID"] = f"<bench-{i}-{rng.randrange(10**9)}@example.org>"
    return msg


def customer(rng: random.Random, i: int) -> bytes:
    name = rng.choice(NAMES)
    charset, cte = rng.choice(CHARSETS)
    text = rng.choice(REQUESTS).format(amount=f"{rng.randrange(5, 500)}.{rng.randrange(100):02d}",
                                       date=f"{rng.randrange(1, 28)} November")
    body = f"Hello,\n\n{text}{rng.choice(SIGNATURES).format(name=name.split()[0])}"
    if rng.random() < 0.4:
        body += HISTORY
    try:
        body.encode(charset)
        name.encode(charset)
    except UnicodeEncodeError:
        charset, cte = "utf-8", "quoted-printable"
    sender = f"{Header(name, charset).encode()} <{name.split()[0].lower()}.{i}@example.org>"
    msg = _base(rng, i, sender, rng.choice(["Help", "Question about my account", "Re: Your card", "Urgent"]), charset)
    kind = rng.random()
    if kind < 0.2:  # HTML only
        paragraphs = "".join(f"<p>{line}</p>" for line in body.split("\n\n"))
        msg.set_content(f"<html><head><style>p{{}}</style><script>track()</script></head><body>{paragraphs}"
                        "</body></html>", subtype="html", charset="utf-8")
    else:
        msg.set_content(body, charset=charset, cte=cte)
        if kind < 0.45:  # multipart/alternative
            msg.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    return bytes(msg)


def machine(rng: random.Random, i: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        msg = _base(rng, i, "Bob <bob@example.org>", "Automatic reply: Help")
        msg["Auto-Submitted"] = "auto-replied"
        msg.set_content("I am out of the office until Monday.")
    elif kind == 1:
        msg = _base(rng, i, "MAILER-DAEMON@mx.example.org", "Undelivered Mail Returned to Sender")
        msg["Return-Path"] = "<>"
        msg.set_content("Delivery to the following recipient failed permanently: gone@example.org")
    elif kind == 2:
        msg = _base(rng, i, "News <news@lists.example.org>", "Weekly digest")
        msg["List-Id"] = "<news.lists.example.org>"
        msg["Precedence"] = "list"
        msg.set_content("This week's news.")
    elif kind == 3:
        msg = _base(rng, i, "Shop <no-reply@shop.example>", "Your order has shipped")
        msg.set_content("Your order is on its way.")
    elif kind == 4:
        msg = _base(rng, i, OWN, "Re: Help")
        msg.set_content("Hi, your card is on its way.\n\nKind regards,\nKestrel Bank Support")
    else:
        return rng.choice([
            b"Subject: no sender\nMessage-ID: <ns-%d@x>\n\nplease help\n" % i,
            b"From: k@example.org\nMessage-ID: <br-%d@x>\nContent-Type: multipart/mixed; boundary=zzz\n\n"
            b"--yyy\nContent-Type: text/plain\n\nhello\n--yyy--\n" % i,
            bytes(rng.randrange(256) for _ in range(2000)).replace(b"\nFrom ", b"\n_rom "),
        ])
    return bytes(msg)


def generate(path: Path, n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    box = mailbox.mbox(str(path))
    made, kinds = [], {"customer": 0, "machine or malformed": 0, "duplicate": 0}
    for i in tqdm(range(n), desc="generating", unit="msg"):
        if made and rng.random() < 0.03:
            raw, kind = rng.choice(made), "duplicate"
        elif rng.random() < 0.7:
            raw, kind = customer(rng, i), "customer"
        else:
            raw, kind = machine(rng, i), "machine or malformed"
        made.append(raw)
        kinds[kind] += 1
        box.add(raw)
    box.flush()
    box.close()
    return kinds


def parse_and_filter(path: Path, n: int) -> float:
    from channels import email, mailstore

    start = time.perf_counter()
    for item in tqdm(mailstore.read_mbox(path), total=n, desc="parse + filter", unit="msg", leave=False):
        _ = item.key
        try:
            parsed = email.parse(item.raw)
        except Exception:
            continue
        email.skip_reason(parsed, OWN) or email.damage(parsed)
    return time.perf_counter() - start


def whole_pipeline(path: Path, n: int, agent, work: Path) -> tuple[float, dict[str, int]]:
    from channels import mailstore

    outbox = Path(tempfile.mkdtemp(prefix="outbox-", dir=work))
    start = time.perf_counter()
    with mailstore.StateStore(outbox / "state.sqlite") as state:
        runner = mailstore.Runner(agent, outbox, state)
        for _ in tqdm(runner.run(mailstore.read_mbox(path)), total=n, desc="whole pipeline", unit="msg", leave=False):
            pass
    return time.perf_counter() - start, {k: v for k, v in runner.counts.items() if v}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="runs of parse + filter (median reported)")
    p.add_argument("--full-repeats", type=int, default=1, help="runs of the whole pipeline (median reported)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", help="write the mailbox and outboxes here instead of a temporary folder")
    args = p.parse_args()

    import warnings

    warnings.filterwarnings("ignore")
    from agent.pipeline import Agent
    from agent.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        mbox = work / "mailbox.mbox"
        mbox.unlink(missing_ok=True)
        kinds = generate(mbox, args.messages, args.seed)
        size_mb = mbox.stat().st_size / 1e6
        parse_s = [parse_and_filter(mbox, args.messages) for _ in range(args.repeats)]
        start = time.perf_counter()
        agent = Agent(Settings.load()).warm_up()
        load_s = time.perf_counter() - start
        full = [whole_pipeline(mbox, args.messages, agent, work) for _ in range(args.full_repeats)]
        full_s = statistics.median(s for s, _ in full)

    n = args.messages
    print(f"\nmailbox: {n} messages, {size_mb:.1f} MB ({', '.join(f'{v} {k}' for k, v in kinds.items())})")
    rows = [("parse + filter", f"{statistics.median(parse_s):.2f} s", f"{n / statistics.median(parse_s):.0f}",
             f"median of {len(parse_s)}", "≥ 200 msg/s"),
            ("whole pipeline", f"{full_s:.1f} s", f"{n / full_s:.1f}", f"median of {len(full)}", "≤ 300 s / 1,000"),
            ("model loading (once)", f"{load_s:.1f} s", "", "", "")]
    print(f"{'stage':<22}{'time':>10}{'msg/s':>10}  {'runs':<14}target")
    for row in rows:
        print(f"{row[0]:<22}{row[1]:>10}{row[2]:>10}  {row[3]:<14}{row[4]}")
    print("actions:", ", ".join(f"{v} {k}" for k, v in full[0][1].items()))


if __name__ == "__main__":
    main()
