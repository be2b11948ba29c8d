"""How long the email channel takes on hostile input: bodies and markup built to make a parser backtrack,
malformed MIME, a 20,000-character header, and a 25 MB attachment.

    .venv/bin/python bench/email_hostile.py [--repeats 3] [--no-agent]

Each line is the median of ``--repeats`` runs, in seconds. Targets (the channel's cost must stay linear):
new_text under 2 s and html_to_text with the hostile header under 5 s for all the inputs together; the
hostile messages through ``email.process`` under 10 s together; the 25 MB attachment under 30 s.
With ``--no-agent`` the messages are parsed and filtered only (no models load).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BODIES = {"50,000 blank lines": "\n" * 50_000 + "x", "50,000 space lines": " \n" * 50_000 + "x",
          "'On' and 50,000 words": "On " + "a " * 50_000, "50,000 quote marks": "> \n" * 50_000}
MARKUP = ("<a ", "<![", "<!--", "<p>x", "<script>", "<blockquote>", "&#x")  # each repeated 100,000 times
HEADER = b"From: \xe9" + b"(" * 20_000 + b" <a@b.org>\nSubject: s\n\nhi\n"


def _mail(subject: str, body: str, message_id: str, attach: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "Lou <lou@example.org>", "support@kestrel.example", \
        subject, message_id
    msg.set_content(body)
    if attach is not None:
        msg.add_attachment(attach, maintype="application", subtype="pdf", filename="statement.pdf")
    return msg.as_bytes()


MESSAGES = {
    "3,000 nested multiparts": b"From: n@example.org\nMessage-ID: <nested@example.org>\nContent-Type: multipart/mixed; "
                               b"boundary=b\n\n" + b"--b\nContent-Type: multipart/mixed; boundary=b\n\n" * 3000,
    "boundary never found": b"From: Kim <kim@example.org>\nSubject: help\nMessage-ID: <broken-1@example.org>\n"
                            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"zzz\"\n\n--yyy\n"
                            b"Content-Type: text/plain\n\nMy card has not arrived\n--yyy--\n",
    "binary body": b"From: g@example.org\nSubject: x\nMessage-ID: <garbage@example.org>\n\n"
                   + bytes((i * 37 + 11) % 256 for i in range(6000)),
    "20,000-character subject": _mail("Passcode " + "x" * 20000, "I forgot my passcode and cannot log in to the app.",
                                      "<long-1@example.org>"),
    "50,000 blank lines, no sender": b"From: x\n" + b"\n" * 50_000 + b"text",
}


def median_s(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-agent", dest="agent", action="store_false", help="parse and filter only: no models")
    args = p.parse_args()
    from channels import email

    rows = [(f"new_text: {name}", median_s(lambda b=body: email.new_text(b), args.repeats))
            for name, body in BODIES.items()]
    rows += [(f"html_to_text: {pattern!r} x 100,000", median_s(lambda m=pattern * 100_000: email.html_to_text(m),
                                                               args.repeats)) for pattern in MARKUP]
    rows.append(("parse: a From of 20,000 nested comments", median_s(lambda: email.parse(HEADER), args.repeats)))
    if args.agent:
        from agent.pipeline import Agent

        agent = Agent().warm_up()
        process = lambda raw: email.process(raw, agent)  # noqa: E731
        large = _mail("Card", "I ordered a new bank card two weeks ago, but it still has not arrived. Where is it?",
                      "<att-1@example.org>", attach=os.urandom(25 * 1024 * 1024))
    else:
        def process(raw):
            try:
                parsed = email.parse(raw)
            except Exception:  # rejected: the time to find out is what counts
                return
            email.skip_reason(parsed, "support@kestrel.example") or email.unanswerable(parsed)
        large = None
    rows += [(f"process: {name}", median_s(lambda r=raw: process(r), args.repeats)) for name, raw in MESSAGES.items()]
    if large is not None:
        rows.append(("process: a 25 MB attachment", median_s(lambda: process(large), args.repeats)))
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s")
    groups = {"new_text": 2, "html_to_text": 5, "process": 10}
    for prefix, target in groups.items():
        total = sum(s for name, s in rows if name.startswith(prefix) and "25 MB" not in name)
        print(f"{prefix} together: {total:.3f} s (target < {target} s)")


if __name__ == "__main__":
    main()
