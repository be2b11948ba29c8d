"""Which emails get an answer: RFC 3834's rules against automatic replies (auto-replies, bounces, lists,
loops) and the checks that a message is readable and answerable at all."""
from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Iterable

from .email_draft import KEY_HEADER
from .email_parse import ParsedEmail

# A multipart body whose boundaries were never found: mail-parser hands back the raw MIME markup
# as the body, so there is no customer text to read.
FATAL_DEFECTS = {"StartBoundaryNotFoundDefect", "NoBoundaryInMultipartDefect"}

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



def unanswerable(parsed: ParsedEmail) -> str | None:
    """Why nobody can answer this message: it is damaged, or has no valid sender address; or None."""
    reason = damage(parsed) or (None if parsed.sender else "no sender address (From) to reply to")
    if not reason and not _ADDRESS.fullmatch(parsed.sender):
        reason = f"the sender address is not valid: {parsed.sender[:100]!r}"
    return reason
