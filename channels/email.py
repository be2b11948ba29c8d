"""The email channel: raw RFC 5322 bytes in, a ``Message`` for the agent, a threaded draft out.

Parsing uses mail-parser, which never raises on a broken MIME structure: it records defects and
folds the garbage into the body. So we check what it found: no header fields at all means the
input was not an email, a multipart body whose boundaries were never found is a broken structure,
and a body that is mostly control characters is binary. The customer's new text is separated from
quoted history, forwarded messages and signatures. Every size is bounded before the slow step that
it would feed, so no input can make parsing hang or take unbounded memory.

Mailboxes, the exactly-once state store and SMTP sending live in ``channels.mailstore``; IMAP folders in
``channels.imap`` and ``channels.imap_runner``.
"""
from __future__ import annotations

import base64
import email as stdlib_email
import hashlib
import html
import logging
import mailbox
import os
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from functools import cached_property
from pathlib import Path
from typing import Iterable

from agent.types import AgentError, Message, first_line

# mail-parser logs what it finds in a message (part types, file names) as warnings; logs must not
# carry message content, and the CLI's stderr is for its own lines.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # larger input is rejected before parsing (a 25 MB attachment fits)
MAX_BODY_CHARS = 100_000  # body text read before quotes and signatures are cut
MAX_HTML_CHARS = 1_000_000  # HTML markup turned into text
MAX_TEXT_CHARS = 10_000  # what the agent reads of one message (the encoder keeps 256 tokens anyway)
MAX_VOICEMAIL_BYTES = 20 * 1024 * 1024
MAX_VOICEMAIL_SECONDS = 300  # longer recordings are transcribed up to here
KEY_HEADER = "X-Support-Agent-Key"  # on every draft: which input message it answers

# A multipart body whose boundaries were never found: mail-parser hands back the raw MIME markup
# as the body, so there is no customer text to read.
FATAL_DEFECTS = {"StartBoundaryNotFoundDefect", "NoBoundaryInMultipartDefect"}

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
    name, address = _one_line(name)[:200], _one_line(address)
    subject = _one_line(mail.subject if subject is None else subject)
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


def _one_line(value) -> str:
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
        att = Attachment(_one_line(a.get("filename"))[:200], _one_line(a.get("mail_content_type")).lower(), size)
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
    value = _one_line(value)
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


# HTML to text with linear scans only: the standard library's HTMLParser is quadratic on unclosed
# constructs ('<a ' repeated 13,000 times took 26 s) and raises on some ('<![' repeated).
_QUOTED = "\x01"  # marks text that sat inside a <blockquote>
_HIDDEN = re.compile(r"<!--|<(script|style|title|template|noscript)\b", re.I)  # content never shown
_TAG = re.compile(r"<[^<>]*>")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]{0,15})")
_BREAK = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "hr", "pre"}


def _visible(markup: str) -> str:
    """``markup`` without comments, scripts, styles, titles and templates (an unclosed one runs to the end)."""
    kept, pos = [], 0
    while match := _HIDDEN.search(markup, pos):
        kept.append(markup[pos:match.start()])
        if match.group(1) is None:
            end = markup.find("-->", match.end())
            pos = end + 3 if end >= 0 else -1
        else:
            close = re.compile(rf"</{match.group(1)}\s*>", re.I).search(markup, match.end())
            pos = close.end() if close else -1
        if pos < 0:
            return "".join(kept)
    return "".join(kept) + markup[pos:]


def html_to_text(markup: str) -> str:
    """Readable text from HTML: scripts and styles dropped, blocks on their own lines, quotes as '> '."""
    markup = _visible(markup)
    parts, quoting, pos = [], 0, 0
    for tag in [*_TAG.finditer(markup), None]:
        data = markup[pos:tag.start() if tag else len(markup)].replace("\n", " ")
        parts.append(_QUOTED + data if quoting and data.strip() else data)
        if tag is None:
            break
        pos = tag.end()
        name = _TAG_NAME.match(tag.group(0))
        if name and name.group(2).lower() in _BREAK:
            parts.append("\n")
            if name.group(2).lower() == "blockquote":
                quoting = max(0, quoting + (-1 if name.group(1) else 1))
    lines = []
    for line in html.unescape("".join(parts)).split("\n"):
        text = " ".join(line.replace(_QUOTED, " ").split())
        lines.append(f"> {text}" if _QUOTED in line and text else text)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def to_message(parsed: ParsedEmail, text: str | None = None) -> Message:
    """What the agent reads: the new text (``text`` if given), after the subject where the text is short.

    A short body ("see subject", "please help") leaves the request in the subject; a longer one says
    it, and a generic subject ("Urgent", "Question") would only blur it.
    """
    text = parsed.text if text is None else text
    # A subject's first words, where they are words (a 20,000-character "word" is not).
    subject = "" if _is_reply_subject(parsed.subject) or len(text.split()) >= 8 else " ".join(
        [w for w in parsed.subject.split() if len(w) <= 30][:15])
    text = f"{subject}. {text}" if subject and subject.lower() not in text.lower() else text
    return Message(text=text.strip()[:MAX_TEXT_CHARS], channel="email", customer_name=parsed.sender_name,
                   metadata={"message_id": parsed.message_id, "subject": parsed.subject,
                             "customer_full_name": parsed.sender_display})


_RE_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv|antw|fwd?|wg|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def _is_reply_subject(subject: str) -> bool:
    return bool(_RE_PREFIX.match(subject))


def reply_subject(subject: str) -> str:
    rest = _RE_PREFIX.sub("", _one_line(subject))[:200].strip()
    return f"Re: {rest}" if rest else "Re: your message"


def draft(parsed: ParsedEmail, reply_text: str, from_address: str, key: str | None = None,
          automatic: bool = False, answered: str | None = None) -> EmailMessage:
    """A reply that threads under ``parsed`` in every mail client (RFC 5322 section 3.6.4).

    ``key``: the input message's state key; it makes the reply's Message-ID deterministic and is
    written as ``X-Support-Agent-Key``. ``automatic``: the agent composed the reply on its own, so it
    carries ``Auto-Submitted: auto-generated`` (RFC 3834). ``answered``: the text quoted under the
    reply (default: the customer's new text).
    """
    if not parsed.sender:
        raise AgentError("cannot draft a reply: the message has no sender address")
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = formataddr((parsed.sender_display, parsed.sender))
    msg["Subject"] = reply_subject(parsed.subject)
    msg["Date"] = formatdate(localtime=True)
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "localhost"
    if key:
        msg["Message-ID"] = f"<sa.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    else:
        msg["Message-ID"] = make_msgid(domain=domain)
    if parsed.message_id:
        msg["In-Reply-To"] = parsed.message_id
        earlier = [r for r in parsed.references if r != parsed.message_id]
        if len(earlier) > 9:  # keep the thread's root and its latest messages
            earlier = earlier[:1] + earlier[-8:]
        msg["References"] = " ".join(earlier + [parsed.message_id])
    if automatic:
        msg["Auto-Submitted"] = "auto-generated"
    if key:
        msg[KEY_HEADER] = key
    msg.set_content(reply_text.rstrip() + "\n" + _quote(parsed, parsed.text if answered is None else answered))
    try:  # the email package refuses some display names only when it writes them
        msg.as_bytes()
    except (ValueError, TypeError, IndexError):
        msg.replace_header("To", parsed.sender)
        msg.as_bytes()
    return msg


def _quote(parsed: ParsedEmail, answered: str, max_lines: int = 12, max_chars: int = 1000) -> str:
    lines = [line[:200] for line in answered.splitlines()[:max_lines]]
    quoted = "\n".join("> " + line if line.strip() else ">" for line in lines)[:max_chars]
    who = parsed.sender_name or parsed.sender
    return f"\n{who} wrote:\n{quoted}\n" if quoted.strip("> \n") else ""


def write_draft(outbox: str | Path, msg: EmailMessage, name: str | None = None) -> Path:
    """Store ``msg`` in the outbox Maildir, flagged as a draft; returns the file's path.

    With ``name`` the file name is fixed (``cur/NAME:2,D``) and the write is idempotent: an existing
    draft of that name is kept and returned, and a new one appears whole (written in tmp/, renamed).
    """
    for sub in ("tmp", "new", "cur"):  # Maildir(create=True) makes them only where the folder is new
        (Path(outbox) / sub).mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(str(outbox), create=True)
    if name is None:
        entry = mailbox.MaildirMessage(msg)
        entry.set_subdir("cur")
        entry.set_flags("D")
        key = box.add(entry)
        return Path(outbox) / "cur" / f"{key}:2,D"
    final = Path(outbox) / "cur" / f"{name}:2,D"
    if final.exists():
        return final
    tmp = Path(outbox) / "tmp" / f"{name}.{os.getpid()}"
    tmp.write_bytes(msg.as_bytes())
    os.replace(tmp, final)
    return final


NO_REPLY_LOCALPARTS = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|bounces?)"
                                 r"(?:[+._-].*)?$", re.I)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?reply\s*:|autoreply\b|auto\s*:|out of (?:the )?office\b|undeliverable\s*:|"
    r"undelivered mail\b|delivery status notification\b|mail delivery (?:failed|failure|system)\b|"
    r"returned mail\s*:|failure notice\b|abwesenheitsnotiz\b|r[ée]ponse automatique\b)", re.I)


def skip_reason(parsed: ParsedEmail, own_address: str, also: Iterable[str] = ()) -> str | None:
    """Why this message must get no automatic reply (RFC 3834 section 2), or None.

    ``own_address`` and ``also`` are the mailbox's own addresses: mail from them is a loop (a
    misconfigured forward, an auto-forward), and so is mail from an address it was sent to.
    """
    h = {k.lower(): v for k, v in parsed.headers.items()}
    auto = h.get("auto-submitted", "no").strip().lower()
    if auto and not auto.startswith("no"):
        return f"automatic message (Auto-Submitted: {auto[:60]})"
    content_type = h.get("content-type", "").lower()
    if "multipart/report" in content_type or "delivery-status" in content_type:
        return "delivery or read report"
    if h.get("return-path", "").strip() == "<>" or "x-failed-recipients" in h:
        return "bounce (delivery failure notice)"
    precedence = h.get("precedence", "").strip().lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"bulk mail (Precedence: {precedence})"
    if any(k in h for k in ("list-id", "list-unsubscribe", "list-post", "mailing-list", "x-mailing-list")):
        return "mailing-list message"
    if any(k in h for k in ("x-autoreply", "x-autorespond")) or h.get("x-auto-response-suppress", "").lower() == "all":
        return "auto-reply"
    if KEY_HEADER.lower() in h:
        return "our own reply (it carries our draft header)"
    if _AUTO_SUBJECT.match(parsed.subject or ""):
        return "auto-reply or bounce (by its subject)"
    if not parsed.sender:
        return None  # no sender is a rejection, decided by the caller
    local = parsed.sender.partition("@")[0]
    if NO_REPLY_LOCALPARTS.match(local):
        return f"no-reply sender ({parsed.sender[:100]})"
    sender = parsed.sender.lower()
    if sender in {parseaddr(a)[1].lower() for a in (own_address, *also)}:
        return f"our own message (from {parsed.sender[:100]}): a loop"
    if sender in parsed.recipients:
        return f"a loop: sent from the address it was sent to ({parsed.sender[:100]})"
    return None


def own_addresses(settings) -> list[str]:
    """The mailbox's own addresses besides ``from_address``: setting ``own_addresses``, comma-separated."""
    return [a.strip() for a in settings.own_addresses.split(",") if a.strip()]


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]{1,64}@[^\s@<>()\[\],;:\"\\]{1,253}")


def damage(parsed: ParsedEmail) -> str | None:
    """Why this message cannot be read as a customer's email, or None."""
    fatal = FATAL_DEFECTS & set(parsed.defects)
    if fatal:
        return f"broken MIME structure ({', '.join(sorted(fatal))}): no readable body"
    sample = (parsed.subject + " " + parsed.text)[:4000]
    bad = sum(1 for c in sample if c == "\ufffd" or (ord(c) < 32 and c not in "\n\r\t") or 0x7f <= ord(c) < 0xa0)
    if len(sample) >= 20 and bad > len(sample) // 20:
        return "binary content, not text"
    return None


@dataclass
class EmailResult:
    message_id: str | None
    action: str  # replied, escalated, skipped, rejected, duplicate
    intent: str | None = None
    confidence: float | None = None
    reason: str | None = None
    reply: str | None = None
    draft: str | None = None
    extra: dict = field(default_factory=dict)  # source, key, transcript, sent, ...: printed when set

    def to_dict(self, reply: bool = True) -> dict:
        d = {k: v for k, v in vars(self).items() if k != "extra" and (reply or k != "reply")}
        return {**d, **{k: v for k, v in self.extra.items() if v is not None}}


class Voicemail:
    """Transcribes audio attachments with the voice channel's recogniser (loaded on first use)."""

    def __init__(self, agent):
        self.agent = agent

    @cached_property
    def voice(self):
        from channels.voice import VoiceChannel

        return VoiceChannel(self.agent)

    def __call__(self, attachment: Attachment) -> str:
        from channels import audio

        suffix = Path(attachment.filename).suffix.lower()
        suffix = suffix if suffix in AUDIO_SUFFIXES else AUDIO_TYPES.get(attachment.content_type, ".audio")
        with tempfile.TemporaryDirectory(prefix="support-agent-") as tmp:
            path = Path(tmp) / f"voicemail{suffix}"
            path.write_bytes(attachment.data or b"")
            # Only the first block is decoded: a few MB of a low-bitrate codec can hold hours of audio.
            blocks = audio.stream(path, block_s=MAX_VOICEMAIL_SECONDS)
            try:
                samples = next(blocks)
            except AgentError as exc:  # name the attachment, not our temporary file
                raise AgentError(str(exc).replace(f"{path}: ", "")) from None
            finally:
                blocks.close()
        return self.voice.recogniser.transcribe(samples).text.strip()


def process(raw: bytes, agent, transcribe=None, key: str | None = None) -> tuple[EmailResult, EmailMessage | None]:
    """Parse, filter, understand and draft one message; nothing is written. Never raises on bad input."""
    try:
        parsed = parse(raw)
    except AgentError as exc:
        return EmailResult(message_id=None, action="rejected", reason=str(exc)), None
    own = agent.settings.from_address
    reason = skip_reason(parsed, own, own_addresses(agent.settings))
    if reason:
        return EmailResult(parsed.message_id, "skipped", reason=reason), None
    reason = damage(parsed) or (None if parsed.sender else "no sender address (From) to reply to")
    if not reason and not _ADDRESS.fullmatch(parsed.sender):
        reason = f"the sender address is not valid: {parsed.sender[:100]!r}"
    if reason:
        return EmailResult(parsed.message_id, "rejected", reason=reason), None
    text, transcripts, unheard = parsed.text, [], None
    for att in (a for a in parsed.attachments if a.is_audio):
        if att.data is None:
            unheard = f"voicemail '{att.filename}' is too large to transcribe ({att.size} bytes)"
            continue
        transcribe = transcribe or Voicemail(agent)
        try:
            heard = transcribe(att)
        except AgentError as exc:
            heard, unheard = "", f"voicemail '{att.filename}' could not be transcribed: {exc}"
        except Exception as exc:  # decoders and models on untrusted audio: a person listens instead
            heard, unheard = "", f"voicemail '{att.filename}' could not be transcribed ({type(exc).__name__})"
        if heard:
            transcripts.append(heard)
            text = f"{text}\n\nVoicemail: {heard}".strip()
        elif not unheard:
            unheard = f"voicemail '{att.filename}' holds no recognisable speech"
    reply = agent.handle(to_message(parsed, text))
    escalate, reason, body = reply.escalate, reply.reason, reply.text
    if escalate and not reason:
        reason = "escalated by the agent"
    if unheard and escalate:
        reason = f"{reason}; {unheard}"
    elif unheard:  # a person must listen to what we could not
        from agent.compose import compose

        escalate, reason = True, unheard
        upset = (getattr(reply, "sentiment", None) or {}).get("label") == "negative"
        body = compose(None, reply.entities, "email", agent.knowledge.business, parsed.sender_name, apologise=upset)
    try:
        msg = draft(parsed, body, own, key=key, automatic=not escalate, answered=text)
    except (ValueError, TypeError, IndexError, AgentError) as exc:  # headers the email package refuses
        detail = first_line(exc, type(exc).__name__)
        return EmailResult(parsed.message_id, "rejected", reply.intent, reply.confidence,
                           f"cannot draft a reply: {detail}"), None
    result = EmailResult(parsed.message_id, "escalated" if escalate else "replied", reply.intent, reply.confidence,
                         reason, body)
    result.extra["evidence"] = reply.evidence if reply.escalate else None
    result.extra["intents"] = reply.intents
    if transcripts:
        result.extra["transcript"] = "\n".join(transcripts)
    return result, msg


def handle(raw: bytes, agent, outbox: str | Path, transcribe=None) -> EmailResult:
    """Parse, filter, understand and draft one message. Never raises on bad input: it is 'rejected'."""
    result, msg = process(raw, agent, transcribe)
    if msg is not None:
        result.draft = str(write_draft(outbox, msg))
    return result
