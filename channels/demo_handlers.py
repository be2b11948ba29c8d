"""What the demo's buttons do (``demo.py`` lays out the page): answer a call recording, an email, a mailbox
or an IMAP folder, speak or redraft an edited reply, and save a person's correction.

Every handler turns a problem into one line in the page (``friendly``) and the demo keeps serving. Models
load once, in ``Handlers``, and are shared by every request; each request writes into a folder of its own.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path

import gradio as gr

from agent import logs, records
from agent.pipeline import Agent
from agent.settings import Settings
from agent.types import AgentError, Message, Reply

from . import audio, email, email_sources, imap
from .email_runner import Runner
from .email_state import StateStore, default_state
from .imap_runner import ImapOptions, ImapOutbox, ImapRunner
from .voice import VoiceChannel

log = logs.get("demo")

MAX_RECORDING_BYTES = 100 * 1024 * 1024
MAX_CALL_SECONDS = 15 * 60  # a longer recording would hold the queue for minutes
MAX_SPOKEN_CHARS = 3000  # an edited reply read aloud
MAX_MAILBOX_BYTES = 200 * 1024 * 1024  # also Gradio's upload limit
MAX_MAILBOX_MESSAGES = 2000
_PATH = re.compile(r"(?:/[^\s/:'\"]+)+/([^\s/:'\"]+)")  # an absolute path; only its file name is shown


@contextlib.contextmanager
def _as_messages(name: str):
    """Problems become one line in the page and the demo keeps serving: an AgentError as it is, anything
    else by its type only (logged without the customer's data). Server paths are cut to file names. The
    message stays until the user closes it; no traceback is printed."""
    try:
        yield
    except AgentError as exc:
        raise gr.Error(_PATH.sub(r"\1", str(exc).splitlines()[0]), duration=None, print_exception=False) from None
    except Exception as exc:  # a bug or an input no check foresaw: one line, and the next request goes on
        logs.event(log, "demo_error", handler=name, error=type(exc).__name__)
        raise gr.Error(f"Something went wrong ({type(exc).__name__}); the demo is still running, try again or "
                       "another file.", duration=None, print_exception=False) from None


def friendly(handler):
    """``handler`` (a function, or a generator that shows its results in steps) with ``_as_messages``."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def steps(*args, **kwargs):
            with _as_messages(handler.__name__):
                yield from handler(*args, **kwargs)
        return steps

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        with _as_messages(handler.__name__):
            return handler(*args, **kwargs)
    return wrapper


def _size_check(path: str, limit: int, what: str) -> None:
    size = Path(path).stat().st_size
    if size > limit:
        raise AgentError(f"{Path(path).name} is too large for the demo: {size / 2**20:.0f} MB "
                         f"(limit {limit // 2**20} MB for {what})")


def analysis(reply: Reply | None) -> tuple:
    """What the agent understood, for the analysis components: intent and candidates, escalation,
    sentiment, entities."""
    if reply is None:
        return None, "", "", []
    intents = {reply.intent: reply.confidence, **{s.intent: s.probability for s in reply.top}}
    escalation = f"Yes: {reply.reason}" if reply.escalate else "No: the agent answers"
    if reply.escalate and reply.evidence:
        escalation += f'\nBecause of: "{reply.evidence}"'
    if len(reply.intents) > 1:  # every request the message makes, and the sentence that asks it
        escalation += "\nRequests: " + "; ".join(f'{r["intent"]} ("{r["sentence"]}")' for r in reply.intents)
    mood = reply.sentiment or {}
    feeling = f"{mood.get('label', '?')} (VADER {mood.get('score', 0):+.2f})" if mood else ""
    if mood.get("source") == "hand-over":  # negative because of why it is handed over, whatever VADER said
        feeling = f"{mood['label']} (from the hand-over reason; VADER {mood['score']:+.2f})"
    return intents, escalation, feeling, [[e.kind, e.text, e.value] for e in reply.entities]


def read_email(upload: str | None, pasted: str) -> bytes:
    """The raw message: the uploaded file, else the pasted text."""
    if upload:
        _size_check(upload, email.MAX_MESSAGE_BYTES, "an email")
        return Path(upload).read_bytes()
    if pasted.strip():
        if len(pasted) > email.MAX_MESSAGE_BYTES:
            raise AgentError("The pasted message is too large for the demo.")
        return pasted.encode("utf-8", errors="replace")
    raise AgentError("Upload an .eml file or paste a message first.")


def email_fields(parsed: email.ParsedEmail) -> list[list[str]]:
    """The parsed header fields shown beside a drafted reply."""
    return [["From", f"{parsed.sender_display} <{parsed.sender}>".strip()], ["Subject", parsed.subject],
            ["Date", parsed.date or ""], ["Message-ID", parsed.message_id or ""],
            ["References", " ".join(parsed.references)],
            ["Attachments", ", ".join(f"{a.filename} ({a.content_type})" for a in parsed.attachments)]]


def mailbox_items(path: Path):
    """The uploaded mailbox's messages (a zip of .eml files, or an mbox) and how many there are."""
    if zipfile.is_zipfile(path):
        members = email_sources.zip_members(path)
        _message_limit(path, len(members))
        return email_sources.read_zip(path, members), len(members)
    total = email_sources.count_mbox(path)
    _message_limit(path, total)
    try:
        return email_sources.read_mbox(path), total
    except AgentError:
        raise AgentError(f"{path.name} is neither an mbox file nor a zip of .eml files") from None


def _message_limit(path: Path, total: int) -> None:
    if total > MAX_MAILBOX_MESSAGES:
        raise AgentError(f"{path.name} holds {total} messages; the demo answers up to {MAX_MAILBOX_MESSAGES}")


def rows_of(results, total: int, progress) -> tuple[list, list, list]:
    """The results as table rows, each answered message with its reply (for corrections), and the results."""
    rows, answered, done = [], [], []
    progress((0, total), desc="Answering messages", unit="messages")
    for n, result in enumerate(results, 1):
        progress((n, max(total, n)), desc="Answering messages", unit="messages")
        rows.append([n, result.extra.get("source", ""), result.action, result.intent or "", result.confidence,
                     result.reason or ""])
        answered.append((result.message, result.agent_reply) if result.agent_reply else None)
        done.append(result)
    return rows, answered, done


def drafts_zip(results, path: Path) -> int:
    """The drafts of ``results`` in one zip at ``path``, named by their row, action and intent; how many."""
    drafts = [(f"{n:04d}-{r.action}-{r.intent or 'none'}.eml", r.draft) for n, r in enumerate(results, 1) if r.draft]
    if drafts:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, draft in drafts:
                z.write(draft, name)
    return len(drafts)


class Handlers:
    """The demo's event handlers, sharing one loaded agent, recogniser and voice."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.agent = Agent(settings)
        self.voice = VoiceChannel(self.agent).warm_up()
        self.voicemail = email.Voicemail(self.agent, voice=self.voice)  # the loaded recogniser, not a second one
        self.intents = sorted(self.agent.classifier.head.labels)
        self.feedback_file = Path(settings.feedback_file)
        self.workdir = Path(tempfile.mkdtemp(prefix="support-agent-demo-"))
        atexit.register(shutil.rmtree, self.workdir, ignore_errors=True)

    def fresh_dir(self) -> Path:
        """A folder of this request's own: concurrent users never share an output file."""
        path = self.workdir / uuid.uuid4().hex[:12]
        path.mkdir()
        return path

    def choice(self, intent: str | None) -> str | None:
        """The correction list starts at the predicted intent (none for an empty message)."""
        return intent if intent in self.intents else None

    # Call ----------------------------------------------------------------------------------------------
    def call_outputs(self, result):
        t, reply = result.transcript, result.reply
        parties = any(s.speaker for s in t.segments)  # a two-party call: stereo, or mono and diarized
        rows = ([[u["speaker"], u["start"], u["end"], u["text"]] for u in t.turns()] if parties
                else [["caller", s.start, s.end, s.text] for s in t.segments])
        timings = " · ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in result.timings.items())
        timings += f" · total {sum(result.timings.values()):.2f} s for {t.duration_s:.1f} s of audio"
        item = (Message(text=result.customer_text, channel="call"), reply)
        return (rows or [["", 0.0, 0.0, "(no speech found)"]], *analysis(reply), reply.text,
                str(result.audio) if result.audio else None, timings, item, self.choice(reply.intent), "")

    @friendly
    def answer_call(self, recording: str | None):
        """In two steps: what was said and the drafted reply, then (the slower part) the reply spoken."""
        if not recording:
            raise AgentError("Upload or record a call first.")
        _size_check(recording, MAX_RECORDING_BYTES, "a call recording")
        seconds, _ = audio.probe(recording)
        if seconds is not None and seconds > MAX_CALL_SECONDS:
            raise AgentError(f"{Path(recording).name} lasts {seconds / 60:.0f} minutes: the demo answers calls "
                             f"of up to {MAX_CALL_SECONDS // 60} minutes (use the support-agent call command)")
        result = self.voice.understand(recording)
        yield self.call_outputs(result)
        yield self.call_outputs(self.voice.speak_reply(result, self.fresh_dir() / "reply.wav"))

    @friendly
    def speak_edited(self, text: str):
        if not text.strip():
            raise AgentError("The reply is empty: there is nothing to say.")
        if len(text) > MAX_SPOKEN_CHARS:
            raise AgentError(f"The reply is too long to speak in the demo ({len(text)} characters, "
                             f"limit {MAX_SPOKEN_CHARS}).")
        return str(self.voice.speak(text, self.fresh_dir() / "reply.wav"))

    # Email ---------------------------------------------------------------------------------------------
    def email_download(self, msg) -> str:
        path = self.fresh_dir() / "reply.eml"
        path.write_bytes(msg.as_bytes())
        return str(path)

    @friendly
    def answer_email(self, upload: str | None, pasted: str):
        raw = read_email(upload, pasted)
        try:
            parsed = email.parse(raw)
        except AgentError as exc:
            raise AgentError(f"Cannot answer this email: {exc}") from None
        result, msg = email.answer(parsed, self.agent, self.voicemail)
        if result.action == "rejected":
            raise AgentError(f"Cannot answer this email: {result.reason}")
        reply = result.agent_reply
        outcome = f"**{result.action}**" + (f": {result.reason}" if result.reason else "")
        if "transcript" in result.extra:
            outcome += f"\n\nVoicemail transcript: {result.extra['transcript']}"
        # What a person edits is the reply body; the customer's quoted text stays as drafted.
        return (email_fields(parsed), parsed.text, outcome, *analysis(reply), result.reply or "",
                msg.as_string() if msg is not None else "", self.email_download(msg) if msg is not None else None,
                (result.message, reply) if reply else None, parsed, self.choice(reply.intent) if reply else None, "")

    @friendly
    def redraft_email(self, parsed, edited: str):
        if parsed is None:
            raise AgentError("Answer an email first.")
        if not edited.strip():
            raise AgentError("The reply is empty.")
        msg = email.draft(parsed, edited, self.settings.from_address)  # a person wrote it: not auto-generated
        return msg.as_string(), self.email_download(msg)

    # Mailbox -------------------------------------------------------------------------------------------
    @friendly
    def process_mailbox(self, upload: str | None, progress=gr.Progress()):
        if not upload:
            raise AgentError("Upload an mbox file or a zip of .eml files first.")
        _size_check(upload, MAX_MAILBOX_BYTES, "a mailbox")
        items, total = mailbox_items(Path(upload))
        run = self.fresh_dir()
        # A fresh outbox and state store per run: every upload is answered afresh, and users never share one.
        with StateStore(run / "state.sqlite") as state:
            runner = Runner(self.agent, run / "outbox", state, transcribe=self.voicemail)
            rows, answered, results = rows_of(runner.run(items), total, progress)
        if not rows:
            raise AgentError(f"{Path(upload).name} holds no messages")
        archive = run / "drafts.zip"
        drafts = drafts_zip(results, archive)
        summary = f"{runner.summary()}; {drafts} draft{'s' if drafts != 1 else ''} in the zip"
        return rows, summary, str(archive) if drafts else None, answered

    @friendly
    def process_imap(self, url: str, password: str, drafts: str, escalate_folder: str, insecure: bool,
                     progress=gr.Progress()):
        """The pass ``support-agent email --imap`` makes, exactly once with the same state store (setting
        'outbox'): drafts go to the IMAP drafts folder. The password serves this run and is kept nowhere."""
        if not url.strip():
            raise AgentError("Give the IMAP folder first: imaps://USER@HOST[:PORT]/FOLDER")
        if not password:
            raise AgentError("Type the account's password: it is used for this run only and never stored.")
        address = imap.ImapAddress.parse(url)
        options = ImapOptions(drafts.strip() or None, escalate_folder.strip() or None)
        mailbox = imap.ImapMailbox(address, password, insecure, self.settings.imap_timeout_s)
        with StateStore(default_state(self.settings.outbox)) as state:
            try:
                options.drafts = mailbox.open(options.drafts, options.escalate_folder)
                runner = Runner(self.agent, ImapOutbox(mailbox, state, options.drafts), state,
                                transcribe=self.voicemail, settings=imap.with_own_address(self.settings, address))
                folder = ImapRunner(mailbox, runner, options)
                rows, answered, _ = rows_of(folder.results(), len(folder.pending()), progress)
            finally:
                mailbox.close()
        summary = f"{runner.summary()}; drafts in {options.drafts}" if rows else (
            f"No new messages in {address.folder}: every message there was answered before.")
        return rows, summary, None, answered

    def pick_message(self, answered, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        item = answered[row] if answered and 0 <= row < len(answered) else None
        if item is None:
            return None, "This message got no reply from the agent (see its action): nothing to correct.", None, ""
        message, reply = item
        return item, f"**Message {row + 1}:** {message.text[:1000]}", self.choice(reply.intent), reply.text

    # Feedback ------------------------------------------------------------------------------------------
    @friendly
    def save_feedback(self, item, intent: str | None, edited: str, request: gr.Request):
        """Append a person's correction, with their name, to the feedback file, which the fine-tuning scripts
        read."""
        if not item:
            raise AgentError("Nothing to correct yet: answer a call, an email or a mailbox first.")
        message, reply = item
        if intent and intent not in self.intents:
            raise AgentError(f"Unknown intent '{intent}'.")
        corrected_intent = intent if intent and intent != reply.intent else None
        corrected_reply = edited.strip() if edited.strip() and edited.strip() != reply.text.strip() else None
        records.append(self.feedback_file, records.from_reply(message, reply, corrected_intent, corrected_reply,
                                                              user=request.username))
        said = [f"intent corrected to {corrected_intent}" if corrected_intent else f"intent {reply.intent} confirmed",
                "reply edited" if corrected_reply else "reply kept"]
        return f"Saved to {self.feedback_file.name}: {', '.join(said)}."
