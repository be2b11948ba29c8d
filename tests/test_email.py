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
])
def test_new_text_drops_quotes_and_signatures(body, expected):
    assert channel.new_text(body) == expected


@pytest.mark.parametrize("subject, expected", [
    ("Card payment", "Re: Card payment"), ("Re: RE: Aw: Card payment", "Re: Card payment"), ("", "Re: your message"),
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
])
def test_never_reply_to_machines_lists_or_ourselves(extra_header, sender, reason):
    raw = f"From: {sender}\nSubject: hi\nMessage-ID: <m@x>\n{extra_header}\n\nbody\n".encode()
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
])
def test_bad_or_unanswerable_input_gets_an_action(agent, tmp_path, raw, action, reason):
    result = channel.handle(raw, agent, tmp_path / "outbox")
    assert result.action == action and reason in result.reason
    assert not (tmp_path / "outbox").exists()
