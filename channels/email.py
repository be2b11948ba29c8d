"""The email channel: raw RFC 5322 bytes in, a ``Message`` for the agent, a threaded draft out.

Parsing uses mail-parser, which never raises on broken input: it records defects and folds
garbage into the body. So we check what it found: no header fields at all means the input was
not an email. The customer's new text is separated from quoted history and signatures.
"""
from __future__ import annotations

import html
import mailbox
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from html.parser import HTMLParser
from pathlib import Path

from agent.types import AgentError, Message

MAX_MESSAGE_BYTES = 30 * 1024 * 1024  # larger input is rejected before parsing, so memory stays bounded


@dataclass
class ParsedEmail:
    message_id: str | None
    sender: str | None
    sender_name: str | None  # first name, for the greeting
    subject: str
    text: str  # the customer's new text: no quoted history, no signature
    date: str | None = None
    sender_display: str = ""  # the full display name, for the reply's To
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)


def parse(raw: bytes) -> ParsedEmail:
    import mailparser

    if not raw.strip():
        raise AgentError("not an email message: the input is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise AgentError(f"email message too large: {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
    mail = mailparser.parse_from_bytes(raw)
    if not mail.headers:
        raise AgentError("not an email message: no header fields found")
    name, address = (mail.from_[0] if mail.from_ else ("", ""))
    headers = {k: str(v) for k, v in mail.headers.items()}
    body = "\n".join(mail.text_plain) if mail.text_plain else "\n".join(html_to_text(h) for h in mail.text_html)
    references = (headers.get("References", "") + " " + headers.get("In-Reply-To", "")).split()
    return ParsedEmail(
        message_id=(mail.message_id or "").strip() or None, sender=address or None,
        sender_name=first_name(name, address), subject=mail.subject or "", text=new_text(body),
        date=headers.get("Date"), sender_display=name or "", references=list(dict.fromkeys(references)), headers=headers,
        defects=sorted(mail.defects_categories))


def first_name(display_name: str, address: str) -> str | None:
    name = (display_name or "").strip().strip('"')
    if not name or "@" in name or name.lower() == address.lower():
        return None
    if "," in name:  # "Smith, Anna"
        name = name.split(",", 1)[1].strip()
    first = name.split()[0]
    return first if first[:1].isalpha() else None


_QUOTE_HEADER = re.compile(
    r"^\s*(?:On\s.{0,200}?wrote:|Am\s.{0,200}?schrieb.{0,40}:|Le\s.{0,200}?a écrit\s?:|"
    r"-{2,}\s*(?:Original Message|Forwarded message)\s*-{2,}|From:\s.+|_{10,})\s*$", re.I | re.M)
_SIGNATURE = re.compile(r"^(?:-- ?|Sent from my \w+.*|Kind regards,?|Best regards,?|Regards,?|Thanks,?|"
                        r"Thank you,?|Cheers,?|Best,?|Many thanks,?)\s*$", re.I | re.M)


def new_text(body: str) -> str:
    """The part of an email body the customer just wrote."""
    body = body.replace("\r\n", "\n")
    cut = _QUOTE_HEADER.search(body)
    if cut:
        body = body[:cut.start()]
    lines = [line for line in body.split("\n") if not line.lstrip().startswith(">")]
    body = "\n".join(lines)
    sign_off = _SIGNATURE.search(body)
    if sign_off and sign_off.start() > 0:
        body = body[:sign_off.start()]
    return body.strip()


class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "head", "title"}
    BREAK = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BREAK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text from HTML: scripts and styles dropped, blocks on their own lines."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    text = html.unescape("".join(extractor.parts))
    return "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()


def to_message(parsed: ParsedEmail) -> Message:
    subject = parsed.subject if not _is_reply_subject(parsed.subject) else ""
    # The subject often carries the request ("Card not arrived"); body alone can be "see subject".
    text = f"{subject}. {parsed.text}" if subject and subject.lower() not in parsed.text.lower() else parsed.text
    return Message(text=text.strip(), channel="email", customer_name=parsed.sender_name,
                   metadata={"message_id": parsed.message_id, "subject": parsed.subject})


_RE_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def _is_reply_subject(subject: str) -> bool:
    return bool(_RE_PREFIX.match(subject))


def reply_subject(subject: str) -> str:
    rest = _RE_PREFIX.sub("", subject).strip()
    return f"Re: {rest}" if rest else "Re: your message"


def draft(parsed: ParsedEmail, reply_text: str, from_address: str) -> EmailMessage:
    """A reply that threads under ``parsed`` in every mail client (RFC 5322 section 3.6.4)."""
    if not parsed.sender:
        raise AgentError("cannot draft a reply: the message has no sender address")
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = formataddr((parsed.sender_display, parsed.sender))
    msg["Subject"] = reply_subject(parsed.subject)
    msg["Date"] = formatdate(localtime=True)
    domain = parseaddr(from_address)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    if parsed.message_id:
        msg["In-Reply-To"] = parsed.message_id
        msg["References"] = " ".join([r for r in parsed.references if r != parsed.message_id] + [parsed.message_id])
    quoted = "\n".join("> " + line for line in parsed.text.splitlines()[:12])
    who = parsed.sender_name or parsed.sender
    msg.set_content(f"{reply_text}\n\n{who} wrote:\n{quoted}\n" if quoted else reply_text + "\n")
    return msg


def write_draft(outbox: str | Path, msg: EmailMessage) -> Path:
    """Store ``msg`` in the outbox Maildir, flagged as a draft; returns the file's path."""
    box = mailbox.Maildir(str(outbox), create=True)
    entry = mailbox.MaildirMessage(msg)
    entry.set_subdir("cur")
    entry.set_flags("D")
    key = box.add(entry)
    return Path(outbox) / "cur" / f"{key}:2,D"


NO_REPLY_LOCALPARTS = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|bounces?)"
                                 r"(?:[+.-].*)?$", re.I)


def skip_reason(parsed: ParsedEmail, own_address: str) -> str | None:
    """Why this message must get no automatic reply (RFC 3834 section 2), or None."""
    h = {k.lower(): v for k, v in parsed.headers.items()}
    auto = h.get("auto-submitted", "no").strip().lower()
    if auto and not auto.startswith("no"):
        return f"automatic message (Auto-Submitted: {auto})"
    if "multipart/report" in h.get("content-type", "").lower():
        return "delivery or read report"
    if h.get("precedence", "").strip().lower() in ("bulk", "list", "junk"):
        return f"bulk mail (Precedence: {h['precedence'].strip()})"
    if "list-id" in h or "list-unsubscribe" in h:
        return "mailing-list message"
    if any(k in h for k in ("x-autoreply", "x-autorespond")) or h.get("x-auto-response-suppress", "").lower() == "all":
        return "auto-reply"
    if not parsed.sender:
        return None  # no sender is a rejection, decided by the caller
    local = parsed.sender.partition("@")[0]
    if NO_REPLY_LOCALPARTS.match(local):
        return f"no-reply sender ({parsed.sender})"
    if parsed.sender.lower() == parseaddr(own_address)[1].lower():
        return "our own message"
    return None


@dataclass
class EmailResult:
    message_id: str | None
    action: str  # replied, escalated, skipped, rejected
    intent: str | None = None
    confidence: float | None = None
    reason: str | None = None
    reply: str | None = None
    draft: str | None = None

    def to_dict(self) -> dict:
        return dict(vars(self))


def handle(raw: bytes, agent, outbox: str | Path) -> EmailResult:
    """Parse, filter, understand and draft one message. Never raises on bad input: it is 'rejected'."""
    try:
        parsed = parse(raw)
    except AgentError as exc:
        return EmailResult(message_id=None, action="rejected", reason=str(exc))
    reason = skip_reason(parsed, agent.settings.from_address)
    if reason:
        return EmailResult(parsed.message_id, "skipped", reason=reason)
    if not parsed.sender:
        return EmailResult(parsed.message_id, "rejected", reason="no sender address (From) to reply to")
    reply = agent.handle(to_message(parsed))
    path = write_draft(outbox, draft(parsed, reply.text, agent.settings.from_address))
    return EmailResult(parsed.message_id, "escalated" if reply.escalate else "replied", reply.intent,
                       reply.confidence, reply.reason, reply.text, str(path))
