"""The email channel: raw RFC 5322 bytes in, a ``Message`` for the agent, a threaded draft out.

One message goes through these steps, each in its own module:

* ``channels.email_parse``: the bytes to a ``ParsedEmail`` (HTML bodies through ``channels.email_html``),
  and the ``Message`` the agent reads;
* ``channels.email_rules``: RFC 3834 (no automatic reply to auto-replies, bounces, lists or loops) and
  whether the message can be read and answered at all;
* here: voicemail attachments transcribed, and the agent asked (``process``);
* ``channels.email_draft``: the agent's reply as a threaded draft;
* ``channels.email_outbox``: the draft stored in a Maildir, or sent through SMTP.

Whole mailboxes: ``channels.email_sources`` (mbox, Maildir, zip, stdin), ``channels.email_state`` (the
exactly-once store) and ``channels.email_runner``; IMAP folders: ``channels.imap`` and ``channels.imap_runner``.
The names those modules export that callers used from here before (``parse``, ``draft``, ``write_draft``,
``skip_reason``, ...) are still importable from this module.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from agent import logs
from agent.types import AgentError, Message, Reply, first_line

from .email_draft import KEY_HEADER, draft
from .email_html import html_to_text
from .email_outbox import write_draft
from .email_parse import (AUDIO_SUFFIXES, AUDIO_TYPES, MAX_BODY_CHARS, MAX_HTML_CHARS, MAX_MESSAGE_BYTES,
                          MAX_TEXT_CHARS, MAX_VOICEMAIL_BYTES, MAX_VOICEMAIL_SECONDS, RECIPIENT_HEADERS,
                          Attachment, ParsedEmail, clean_message_id, first_name, message_id_of, new_text, parse,
                          reply_subject, to_message)
from .email_rules import FATAL_DEFECTS, NO_REPLY_LOCALPARTS, damage, own_addresses, skip_reason, unanswerable

__all__ = ["AUDIO_SUFFIXES", "AUDIO_TYPES", "Attachment", "EmailResult", "FATAL_DEFECTS", "KEY_HEADER",
           "MAX_BODY_CHARS", "MAX_HTML_CHARS", "MAX_MESSAGE_BYTES", "MAX_TEXT_CHARS", "MAX_VOICEMAIL_BYTES",
           "MAX_VOICEMAIL_SECONDS", "NO_REPLY_LOCALPARTS", "ParsedEmail", "RECIPIENT_HEADERS", "Voicemail",
           "answer", "clean_message_id", "damage", "draft", "first_name", "handle", "html_to_text",
           "message_id_of", "new_text", "own_addresses", "parse", "process", "reply_subject", "skip_reason",
           "to_message", "unanswerable", "write_draft"]

_NOT_PRINTED = ("extra", "message", "agent_reply")


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
    # What the agent read and its whole reply (intent candidates, entities, sentiment), where it was asked;
    # for corrections and display, never printed.
    message: Message | None = field(default=None, repr=False)
    agent_reply: Reply | None = field(default=None, repr=False)

    def to_dict(self, reply: bool = True) -> dict:
        d = {k: v for k, v in vars(self).items() if k not in _NOT_PRINTED and (reply or k != "reply")}
        return {**d, **{k: v for k, v in self.extra.items() if v is not None}}


class Voicemail:
    """Transcribes audio attachments with the voice channel's recogniser (loaded on first use, unless
    ``voice``, a loaded ``VoiceChannel``, is given)."""

    def __init__(self, agent, voice=None):
        self.agent, self._voice = agent, voice

    @property
    def voice(self):
        if self._voice is None:
            from channels.voice import VoiceChannel

            self._voice = VoiceChannel(self.agent)
        return self._voice

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


def process(raw: bytes, agent, transcribe=None, key: str | None = None,
            settings=None) -> tuple[EmailResult, EmailMessage | None]:
    """Parse, filter, understand and draft one message; nothing is written. Never raises on bad input.

    ``transcribe``: reads a voicemail attachment (default: a ``Voicemail`` of ``agent``); ``key``: the
    message's state key (see ``draft``); ``settings``: the mailbox's own addresses (``from_address``,
    ``own_addresses``), by default the agent's. The result carries the agent's ``Reply``
    (``agent_reply``) and the ``Message`` it read, where the agent was asked."""
    try:
        parsed = parse(raw)
    except AgentError as exc:
        return EmailResult(message_id=None, action="rejected", reason=str(exc)), None
    return answer(parsed, agent, transcribe, key, settings)


def answer(parsed: ParsedEmail, agent, transcribe=None, key: str | None = None,
           settings=None) -> tuple[EmailResult, EmailMessage | None]:
    """``process`` for a message already parsed."""
    settings = settings or agent.settings
    own = settings.from_address
    reason = skip_reason(parsed, own, own_addresses(settings))
    if reason:
        return EmailResult(parsed.message_id, "skipped", reason=reason), None
    reason = unanswerable(parsed)
    if reason:
        return EmailResult(parsed.message_id, "rejected", reason=reason), None
    text, transcripts, unheard = _with_voicemail(parsed, agent, transcribe)
    message = to_message(parsed, text)
    reply = _ask(agent, message, unheard)
    reason = reply.reason or ("escalated by the agent" if reply.escalate else None)
    try:
        msg = draft(parsed, reply.text, own, key=key, automatic=not reply.escalate, answered=text)
    except (ValueError, TypeError, IndexError, AgentError) as exc:  # headers the email package refuses
        detail = first_line(exc, type(exc).__name__)
        return EmailResult(parsed.message_id, "rejected", reply.intent, reply.confidence,
                           f"cannot draft a reply: {detail}", message=message, agent_reply=reply), None
    result = EmailResult(parsed.message_id, "escalated" if reply.escalate else "replied", reply.intent,
                         reply.confidence, reason, reply.text, message=message, agent_reply=reply)
    result.extra["evidence"] = reply.evidence if reply.escalate else None
    result.extra["intents"] = reply.intents
    if transcripts:
        result.extra["transcript"] = "\n".join(transcripts)
    return result, msg


def _with_voicemail(parsed: ParsedEmail, agent, transcribe) -> tuple[str, list[str], str | None]:
    """The customer's text with what their voicemail attachments say; the transcripts; and why a voicemail
    could not be heard (then a person must listen), or None."""
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
    return text, transcripts, unheard


def _ask(agent, message: Message, unheard: str | None) -> Reply:
    """The agent's reply to ``message``. A voicemail nobody could hear hands the message to a person
    whatever the agent understood: the agent drafts its holding reply for an escalation, with the reason."""
    if unheard is None:
        return agent.handle(message)
    with logs.about(*message.known_names()):
        understood = agent.understand(message.text)
        reason = f"{understood.reason or 'escalated by the agent'}; {unheard}" if understood.escalate else unheard
        escalated = dataclasses.replace(understood, escalate=True, reason=reason,
                                        evidence=understood.evidence if understood.escalate else None)
        return agent.respond(message, escalated, None)


def handle(raw: bytes, agent, outbox: str | Path, transcribe=None) -> EmailResult:
    """Parse, filter, understand and draft one message. Never raises on bad input: it is 'rejected'."""
    result, msg = process(raw, agent, transcribe)
    if msg is not None:
        result.draft = str(write_draft(outbox, msg))
    return result
