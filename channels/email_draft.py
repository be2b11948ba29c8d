"""A reply to an email as a threaded draft (RFC 5322 section 3.6.4), marked for RFC 3834 and for the run
that wrote it."""
from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr

from agent.types import AgentError

from .email_parse import ParsedEmail, reply_subject

KEY_HEADER = "X-Support-Agent-Key"  # on every draft: which input message it answers


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
