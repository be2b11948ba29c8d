"""Parsing, filtering and threaded drafts for the email channel."""
import email
import mailbox

import pytest

from channels import email as channel

ANNA = b"""From: "Smith, Anna" <anna.smith@example.org>
To: Kestrel Bank Support <support@kestrel.example>
Subject: Re: RE: Card payment
Message-ID: <CAF1234@mail.example.org>
References: <older@kestrel.example>
Date: Mon, 23 Nov 2026 10:00:00 +0000
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Hello,

I was charged twice for the same payment of =A342.10 at the caf=E9 on 21 November.

Thanks,
Anna

On Sun, 22 Nov 2026, Kestrel Bank Support wrote:
> Thank you for your message.
"""


def test_parse_decodes_charsets_and_keeps_only_new_text():
    p = channel.parse(ANNA)
    assert (p.message_id, p.sender, p.sender_name) == ("<CAF1234@mail.example.org>", "anna.smith@example.org", "Anna")
    assert p.text == "Hello,\n\nI was charged twice for the same payment of £42.10 at the café on 21 November."


def test_rfc2047_headers_and_html_only_bodies():
    raw = ("From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.de>\nSubject: =?utf-8?q?Karte_fehlt?=\n"
           "Message-ID: <1@example.de>\nContent-Type: text/html; charset=utf-8\n\n"
           "<html><head><style>p{}</style><script>alert(1)</script></head><body><p>My card&nbsp;is "
           "<b>missing</b></p><div>since Monday</div></body></html>\n").encode()
    p = channel.parse(raw)
    assert p.sender_name == "Jürgen" and p.subject == "Karte fehlt"
    assert p.text == "My card is missing\n\nsince Monday"


@pytest.mark.parametrize("body, expected", [
    ("Where is my card?\n\n> old quoted line\n> another", "Where is my card?"),
    ("Where is my card?\n\n-----Original Message-----\nFrom: x\nold", "Where is my card?"),
    ("Where is my card?\n-- \nAnna Smith\nACME Ltd", "Where is my card?"),
    ("Where is my card?\n\nSent from my iPhone", "Where is my card?"),
    ("Where is my card?\n\nOn Mon, 23 Nov 2026 at 10:00, Kestrel Bank Support <support@kestrel.example>\n"
     "wrote:\n\nOur reply", "Where is my card?"),
    ("Please see below.\n\nBegin forwarded message:\n\nFrom: Shop\nYour order", "Please see below."),
    ("Where is my card?\n\n---------- Forwarded message ---------\nFrom: x", "Where is my card?"),
    ("Where is my card?\n\nBest regards,\nAnna Smith\nHead of Things", "Where is my card?"),
    ("Thanks,\nmy card is missing", "Thanks,\nmy card is missing"),
])
def test_new_text_drops_quotes_and_signatures(body, expected):
    assert channel.new_text(body) == expected


def test_new_text_reads_hostile_bodies():  # in linear time: bench/email_hostile.py measures it
    assert channel.new_text("\n" * 50_000 + "x") == channel.new_text(" \n" * 50_000 + "x") == "x"
    assert channel.new_text("On " + "a " * 50_000) == ("On " + "a " * 50_000).strip()
    assert channel.new_text("> \n" * 50_000) == ""


def test_hostile_html_and_headers_are_read():  # in linear time: bench/email_hostile.py measures it
    for pattern in ("<a ", "<![", "&#x"):  # never a tag or an entity: kept as text
        assert channel.html_to_text(pattern * 100_000) == (pattern * 100_000).strip()
    for pattern in ("<!--", "<script>", "<blockquote>"):  # unclosed: hidden, or an empty quote
        assert channel.html_to_text(pattern * 100_000) == ""
    assert channel.html_to_text("<p>x" * 100_000) == "\n".join(["x"] * 100_000)
    parsed = channel.parse(b"From: \xe9" + b"(" * 20_000 + b" <a@b.org>\nSubject: s\n\nhi\n")
    assert parsed.text == "hi"


def test_html_quotes_become_quoted_lines_and_are_dropped():
    markup = ("<div>My card is missing.</div><blockquote type=cite><div>Old answer</div>older line</blockquote>"
              "<p>Where is it?</p>")
    assert channel.html_to_text(markup) == "My card is missing.\n\n> Old answer\n> older line\n\nWhere is it?"
    assert channel.new_text(channel.html_to_text(markup)) == "My card is missing.\n\nWhere is it?"


def test_undeclared_8bit_text_and_forwarded_attachments():
    raw = (b"From: Rene <rene@example.be>\nSubject: x\nMessage-ID: <r@x>\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain; charset=us-ascii\n\n"
           b"Caf\xe9 payment failed\n--B\nContent-Type: message/rfc822\n\nFrom: shop@x\nSubject: s\n\n"
           b"forwarded text\n--B--\n")
    parsed = channel.parse(raw)
    assert parsed.text == "Café payment failed" and channel.damage(parsed) is None


def test_raw_8bit_headers_are_decoded():
    raw = "From: Zoë Martin <zoe@example.fr>\nSubject: Carte bloquée\nMessage-ID: <z@x>\n\nMy card is blocked.\n"
    for charset in ("utf-8", "cp1252"):
        parsed = channel.parse(raw.encode(charset))
        assert (parsed.sender, parsed.sender_name, parsed.subject) == ("zoe@example.fr", "Zoë", "Carte bloquée")


@pytest.mark.parametrize("value, expected", [
    (" <a@b> ", "<a@b>"), ("junk <a@b> (comment)", "<a@b>"), ("a@b", "a@b"), ("", None), ("a b", None),
    ("<" + "x" * 2000 + ">", None), ("<caf\u00e9@x>", None),
])
def test_message_ids_are_cleaned_for_keys(value, expected):
    assert channel.clean_message_id(value) == expected


@pytest.mark.parametrize("subject, expected", [
    ("Card payment", "Re: Card payment"), ("Re: RE: Aw: Card payment", "Re: Card payment"), ("", "Re: your message"),
    ("Fwd: Re: Card", "Re: Card"), ("Re: " + "x " * 5000, "Re: " + "x " * 99 + "x"),
])
def test_reply_subject_is_not_stacked(subject, expected):
    assert channel.reply_subject(subject) == expected


@pytest.mark.parametrize("extra_header, sender, reason", [
    ("Auto-Submitted: auto-replied", "a@example.org", "automatic message"),
    ("Precedence: bulk", "a@example.org", "bulk mail"),
    ("List-Id: <news.example.org>", "a@example.org", "mailing-list"),
    ("Content-Type: multipart/report; report-type=delivery-status; boundary=x", "a@example.org", "report"),
    ("X-Dummy: 1", "MAILER-DAEMON@example.org", "no-reply sender"),
    ("X-Dummy: 1", "no-reply@shop.example", "no-reply sender"),
    ("X-Dummy: 1", "support@kestrel.example", "our own message"),
    ("Return-Path: <>", "a@example.org", "bounce"),
    ("X-Failed-Recipients: b@example.org", "a@example.org", "bounce"),
    ("Precedence: auto_reply", "a@example.org", "bulk mail"),
    ("X-Support-Agent-Key: <m@x>", "a@example.org", "our own reply"),
    ("Subject: Automatic reply: away", "a@example.org", "auto-reply or bounce"),
])
def test_never_reply_to_machines_lists_or_ourselves(extra_header, sender, reason):
    subject = "" if extra_header.startswith("Subject") else "Subject: hi\n"
    raw = f"From: {sender}\n{subject}Message-ID: <m@x>\n{extra_header}\n\nbody\n".encode()
    assert reason in channel.skip_reason(channel.parse(raw), "Kestrel <support@kestrel.example>")


def test_a_customer_email_is_not_skipped():
    assert channel.skip_reason(channel.parse(ANNA), "Kestrel <support@kestrel.example>") is None


def test_handle_writes_a_threaded_draft_into_the_outbox(agent, tmp_path):
    result = channel.handle(ANNA, agent, tmp_path / "outbox")
    assert result.action == "replied" and result.intent == "transaction_charged_twice"
    drafts = list(mailbox.Maildir(str(tmp_path / "outbox"), create=False))
    assert len(drafts) == 1 and "D" in drafts[0].get_flags()
    msg = email.message_from_bytes(open(result.draft, "rb").read())
    assert msg["In-Reply-To"] == "<CAF1234@mail.example.org>"
    assert msg["References"] == "<older@kestrel.example> <CAF1234@mail.example.org>"
    assert msg["Subject"] == "Re: Card payment" and "anna.smith@example.org" in msg["To"]
    body = msg.get_payload(decode=True).decode(msg.get_content_charset())
    assert body.startswith("Hi Anna,") and "> I was charged twice" in body


@pytest.mark.parametrize("raw, action, reason", [
    (b"\x00\xff\xfe garbage \x80\x81" * 100, "rejected", "no header fields"),
    (b"", "rejected", "empty"),
    (b"Subject: no sender\nMessage-ID: <n@x>\n\nplease help\n", "rejected", "no sender"),
    (b"From: bounces@list.example\nList-Id: <l.example>\n\nnews\n", "skipped", "mailing-list"),
    (b"From: a@b.org\nSubject: s\n\n" + bytes(range(256)) * 20, "rejected", "binary content"),
    (b"From: <a@b@c>\nSubject: s\n\nmy card", "rejected", "no sender"),
])
def test_bad_or_unanswerable_input_gets_an_action(agent, tmp_path, raw, action, reason):
    result = channel.handle(raw, agent, tmp_path / "outbox")
    assert result.action == action and reason in result.reason
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("headers, sender, also, loop", [
    ("To: help@bank.example", "help@bank.example", [], True),  # sent from the support address to itself
    ("To: support@kestrel.example\nDelivered-To: help@bank.example", "Help@Bank.example", [], True),
    ("To: support@kestrel.example\nX-Original-To: help@bank.example", "help@bank.example", [], True),
    ("To: support@kestrel.example", "desk@bank.example", ["Desk <desk@bank.example>"], True),  # a configured one
    ("To: support@kestrel.example\nCc: anna@example.org", "anna@example.org", [], False),  # a copy to herself
    ("To: support@kestrel.example", "anna@example.org", ["desk@bank.example"], False),
])
def test_mail_from_the_mailbox_own_addresses_is_a_loop(headers, sender, also, loop):
    raw = f"From: {sender}\n{headers}\nSubject: Card\nMessage-ID: <m@x>\n\nMy card has not arrived.\n".encode()
    reason = channel.skip_reason(channel.parse(raw), "Kestrel <support@kestrel.example>", also)
    assert (reason is not None and "loop" in reason) == loop, reason
