"""Reading an email: raw RFC 5322 bytes to a ``ParsedEmail``, and what the agent reads of it.

Parsing uses mail-parser, which never raises on a broken MIME structure: it records defects and
folds the garbage into the body, so the rules (``channels.email_rules``) check what it found. The
customer's new text is separated from quoted history, forwarded messages and signatures. Every size
is bounded before the slow step that it would feed, so no input can make parsing hang or take
unbounded memory.
"""
from __future__ import annotations

import base64
import email as stdlib_email
import logging
import re
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from pathlib import Path

from agent.types import AgentError, Message

from .email_html import html_to_text

# mail-parser logs what it finds in a message (part types, file names) as warnings; logs must not
# carry message content, and the CLI's stderr is for its own lines.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # larger input is rejected before parsing (a 25 MB attachment fits)
MAX_BODY_CHARS = 100_000  # body text read before quotes and signatures are cut
MAX_HTML_CHARS = 1_000_000  # HTML markup turned into text
MAX_TEXT_CHARS = 10_000  # what the agent reads of one message (the encoder keeps 256 tokens anyway)
MAX_VOICEMAIL_BYTES = 20 * 1024 * 1024
MAX_VOICEMAIL_SECONDS = 300  # longer recordings are transcribed up to here

AUDIO_TYPES = {"audio/ogg": ".ogg", "audio/opus": ".opus", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
               "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
               "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac", "audio/flac": ".flac",
               "audio/x-flac": ".flac", "audio/amr": ".amr", "audio/webm": ".webm"}
AUDIO_SUFFIXES = set(AUDIO_TYPES.values()) | {".oga"}


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int  # decoded bytes
    data: bytes | None = None  # kept only for audio small enough to transcribe

    @property
    def is_audio(self) -> bool:
        return self.content_type.startswith("audio/") or Path(self.filename).suffix.lower() in AUDIO_SUFFIXES


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
    attachments: list[Attachment] = field(default_factory=list)
    recipients: set[str] = field(default_factory=set)  # where it was sent (see RECIPIENT_HEADERS), lower case


def parse(raw: bytes) -> ParsedEmail:
    import mailparser

    if not raw or raw.isspace():
        raise AgentError("not an email message: the input is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise AgentError(f"email message too large: {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        message = stdlib_email.message_from_bytes(raw)  # the parser mail-parser itself uses (compat32)
        _drop_forwarded(message)
        mail = mailparser.MailParser(message)
    except Exception as exc:  # mail-parser still raises on some pathological nestings
        raise AgentError(f"broken MIME structure: the message cannot be parsed ({type(exc).__name__})") from None
    if not mail.headers:
        raise AgentError("not an email message: no header fields found")
    name, address = (mail.from_[0] if mail.from_ else ("", ""))
    subject, sender = _header_8bit(message, "Subject"), _header_8bit(message, "From")
    if sender is not None:  # raw 8-bit bytes in From: mail-parser escapes them, so read them ourselves
        try:
            name, address = parseaddr(sender[:1000])
        except RecursionError:  # nested comments: keep what mail-parser read
            pass
    name, address = one_line(name)[:200], one_line(address)
    subject = one_line(mail.subject if subject is None else subject)
    headers = {k: _text(v) for k, v in mail.headers.items()}
    defects = sorted(mail.defects_categories)
    plain, markup = mail.text_plain, mail.text_html
    if "CharsetDecodeDefect" in defects:  # e.g. 8-bit text declared us-ascii, or no charset at all
        plain, markup = _decode_text_parts(message, "plain"), _decode_text_parts(message, "html")
    plain = [p for p in plain if p.strip()]
    body = "\n".join(plain) if plain else "\n".join(html_to_text(h[:MAX_HTML_CHARS]) for h in markup)
    references = (headers.get("References", "") + " " + headers.get("In-Reply-To", "")).split()
    references = [r for r in dict.fromkeys(references) if clean_message_id(r)]
    return ParsedEmail(
        message_id=clean_message_id(mail.message_id), sender=address or None,
        sender_name=first_name(name, address), subject=subject,
        text=new_text(body[:MAX_BODY_CHARS]), date=headers.get("Date"), sender_display=name,
        references=references, headers=headers, defects=defects, attachments=_attachments(mail.attachments),
        recipients=_recipients(message))


_SURROGATES = re.compile("[\ud800-\udfff]")


def _text(value) -> str:
    """``value`` as text that can be written anywhere: undecoded 8-bit bytes (surrogate escapes) are
    read as UTF-8, else Windows-1252."""
    text = str(value or "")
    if not _SURROGATES.search(text):
        return text
    try:
        return _decode(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)


def one_line(value) -> str:
    """``value`` as text on one line, runs of white space as one space."""
    return " ".join(_text(value).split())


def _drop_forwarded(message) -> None:
    """Empty attached messages (message/rfc822): forwarded history, not the customer's new text."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            part.set_payload([])


def _decode(data: bytes, charset: str | None = None) -> str:
    """``data`` decoded with ``charset`` where it can be, else as UTF-8, else as Windows-1252."""
    for name in (charset, "utf-8", "cp1252"):
        try:
            return data.decode(name)
        except (LookupError, ValueError, TypeError):  # unknown or malformed charset names included
            continue
    return data.decode("latin-1")


def _decode_text_parts(message, subtype: str) -> list[str]:
    """Body texts of ``subtype``, each decoded with its declared charset, else UTF-8, else Windows-1252."""
    return [_decode(part.get_payload(decode=True) or b"", part.get_content_charset()) for part in message.walk()
            if not part.is_multipart() and part.get_content_type() == f"text/{subtype}"
            and not part.get_filename() and part.get_content_disposition() != "attachment"]


def _header_8bit(message, name: str) -> str | None:
    """A header holding raw 8-bit bytes (not RFC 2047), decoded; None for any other header."""
    from email.errors import HeaderParseError
    from email.header import Header, decode_header

    value = message.get(name)
    if not isinstance(value, Header):  # compat32 gives a Header only where there are 8-bit bytes
        return None

    def word(match):  # an RFC 2047 word beside the raw bytes
        try:
            ((chunk, charset),) = decode_header(match.group(0))
        except (ValueError, LookupError, UnicodeError, HeaderParseError):
            return match.group(0)
        return _decode(chunk, charset) if isinstance(chunk, bytes) else chunk

    text = "".join(chunk if isinstance(chunk, str) else _decode(chunk, None if cs == "unknown-8bit" else cs)
                   for chunk, cs in decode_header(value))
    return _ENCODED_WORD.sub(word, text)


_ENCODED_WORD = re.compile(r"=\?[^?\s]{1,40}\?[qQbB]\?[^?\s]{0,900}\?=")


# Where a message was sent: its To, and the envelope recipient that delivering servers record.
RECIPIENT_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To")


def _recipients(message) -> set[str]:
    values = [_text(v)[:10_000] for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    try:
        return {address.lower() for _, address in getaddresses(values) if address}
    except (ValueError, IndexError, RecursionError):  # a header the stdlib cannot read names no one
        return set()


def _attachments(found: list[dict]) -> list[Attachment]:
    out = []
    for a in found:
        payload, binary = a.get("payload") or "", a.get("binary")
        size = len(payload) * 3 // 4 if binary else len(payload)
        att = Attachment(one_line(a.get("filename"))[:200], one_line(a.get("mail_content_type")).lower(), size)
        if att.is_audio and size <= MAX_VOICEMAIL_BYTES:
            try:
                att.data = base64.b64decode(payload) if binary else payload.encode("utf-8", "surrogateescape")
                att.size = len(att.data)
            except (ValueError, UnicodeError):
                att.data = None
        out.append(att)
    return out


def clean_message_id(value) -> str | None:
    """A Message-ID usable as a key and in References: printable ASCII, bounded, or None."""
    value = one_line(value)
    bracketed = re.search(r"<[^<>\s]{1,900}>", value)
    value = bracketed.group(0) if bracketed else value
    if not value or len(value) > 900 or not re.fullmatch(r"[\x21-\x7e]+", value):
        return None
    return value


def message_id_of(head: bytes) -> str | None:
    """The Message-ID in a header section, read without parsing the body."""
    from email.parser import BytesHeaderParser

    try:
        return clean_message_id(str(BytesHeaderParser().parsebytes(head).get("Message-ID", "")))
    except Exception:  # a header section the stdlib cannot read has no usable Message-ID
        return None


def first_name(display_name: str, address: str) -> str | None:
    name = (display_name or "").strip().strip('"')
    if not name or "@" in name or name.lower() == (address or "").lower():
        return None
    if "," in name:  # "Smith, Anna"
        name = name.split(",", 1)[1].strip()
    if not name:
        return None
    first = name.split()[0][:40]
    return first if first[:1].isalpha() else None


# Bounded quantifiers and [ \t] (never \s across lines) keep these linear: `^\s*` over thousands of
# blank lines backtracks quadratically.
_QUOTE_HEADER = re.compile(
    r"^[ \t]*(?:On\s[^\n]{0,200}(?:\n[^\n]{0,200})?\swrote:|Am\s[^\n]{0,200}?schrieb[^\n]{0,40}:|"
    r"Le\s[^\n]{0,200}?a écrit\s?:|-{2,}[ \t]*(?:Original Message|Forwarded message)[ \t]*-{2,}|"
    r"Begin forwarded message:|(?:From|Von)[ \t]*:[ \t][^\n]+|_{10,})[ \t]*$", re.I | re.M)
_SIGNATURE = re.compile(
    r"^[ \t]*(?:-- ?|Sent from my [^\n]{1,60}|Sent from (?:Outlook|Mail for Windows)[^\n]{0,40}|"
    r"Get Outlook for [^\n]{1,40}|Kind regards,?|Best regards,?|Warm regards,?|Regards,?|Best wishes,?|"
    r"Thanks,?|Thank you,?|Many thanks,?|Cheers,?|Best,?|Yours sincerely,?|Sincerely,?|"
    r"Mit freundlichen Grüßen,?|Viele Grüße,?|Cordialement,?)[ \t]*$", re.I | re.M)


def new_text(body: str) -> str:
    """The part of an email body the customer just wrote."""
    body = body.replace("\r\n", "\n")
    cut = _QUOTE_HEADER.search(body)
    if cut:
        body = body[:cut.start()]
    lines = [line for line in body.split("\n") if not line.lstrip().startswith(">")]
    body = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", "\n".join(lines))
    sign_off = _SIGNATURE.search(body)
    if sign_off and body[:sign_off.start()].strip():
        body = body[:sign_off.start()]
    return body.strip()


def to_message(parsed: ParsedEmail, text: str | None = None) -> Message:
    """What the agent reads: the new text (``text`` if given), after the subject where the text is short.

    A short body ("see subject", "please help") leaves the request in the subject; a longer one says
    it, and a generic subject ("Urgent", "Question") would only blur it.
    """
    text = parsed.text if text is None else text
    # A subject's first words, where they are words (a 20,000-character "word" is not).
    subject = "" if is_reply_subject(parsed.subject) or len(text.split()) >= 8 else " ".join(
        [w for w in parsed.subject.split() if len(w) <= 30][:15])
    text = f"{subject}. {text}" if subject and subject.lower() not in text.lower() else text
    return Message(text=text.strip()[:MAX_TEXT_CHARS], channel="email", customer_name=parsed.sender_name,
                   metadata={"message_id": parsed.message_id, "subject": parsed.subject,
                             "customer_full_name": parsed.sender_display})


_RE_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv|antw|fwd?|wg|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def is_reply_subject(subject: str) -> bool:
    return bool(_RE_PREFIX.match(subject))



def reply_subject(subject: str) -> str:
    rest = _RE_PREFIX.sub("", one_line(subject))[:200].strip()
    return f"Re: {rest}" if rest else "Re: your message"
