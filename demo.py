"""The support desk in the browser: answer a call recording, an email or a whole mailbox, and correct the agent.

    python demo.py [--host 127.0.0.1] [--port 7860] [--config FILE] [--set KEY=VALUE ...]

Serves on 127.0.0.1 unless told otherwise (``--host``, or ``SUPPORT_AGENT_HOST`` / ``SUPPORT_AGENT_PORT``); never
a public share link, and no analytics. Models load once, before the first page is served, and are shared by
every request. Logins (setting ``users_file``; required beyond loopback), the audit trail and the queues' limits
are ``channels.desk``'s. Corrections are appended to the ``feedback_file`` setting with the user's name.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import inspect
import os
import re
import shutil
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # set before gradio is imported: no calls out from the demo

import gradio as gr  # noqa: E402

from agent import logs, records  # noqa: E402
from agent.pipeline import Agent  # noqa: E402
from agent.settings import Settings, overrides  # noqa: E402
from agent.types import AgentError, Message, Reply  # noqa: E402
from channels import audio, email, imap, mailstore  # noqa: E402
from channels.desk import Desk  # noqa: E402
from channels.imap_runner import ImapOptions, ImapOutbox, ImapRunner  # noqa: E402
from channels.voice import VoiceChannel  # noqa: E402

log = logs.get("demo")

MAX_RECORDING_BYTES = 100 * 1024 * 1024
MAX_CALL_SECONDS = 15 * 60  # a longer recording would hold the queue for minutes
MAX_SPOKEN_CHARS = 3000  # an edited reply read aloud
MAX_MAILBOX_BYTES = 200 * 1024 * 1024  # also Gradio's upload limit
MAX_MAILBOX_MESSAGES = 2000
# Everything in the page uses the fonts the browser has: the default theme would fetch Google Fonts.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
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


class _Witness:
    """The shared agent, keeping each message it handled with its reply: the email channel returns only a
    summary, and feedback records need both."""

    def __init__(self, agent: Agent):
        self._agent, self.seen = agent, []

    def __getattr__(self, name):
        return getattr(self._agent, name)

    def handle(self, message: Message) -> Reply:
        reply = self._agent.handle(message)
        self.seen.append((message, reply))
        return reply


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


def build(settings: Settings) -> gr.Blocks:
    agent = Agent(settings)
    voice = VoiceChannel(agent).warm_up()
    voicemail = email.Voicemail(agent)
    voicemail.voice = voice  # voicemail attachments use the loaded recogniser, not a second copy
    intents = sorted(agent.classifier.head.labels)
    feedback_file = Path(settings.feedback_file)
    workdir = Path(tempfile.mkdtemp(prefix="support-agent-demo-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)

    def fresh_dir() -> Path:
        """A folder of this request's own: concurrent users never share an output file."""
        path = workdir / uuid.uuid4().hex[:12]
        path.mkdir()
        return path

    def choice(intent: str | None) -> str | None:
        """The correction list starts at the predicted intent (none for an empty message)."""
        return intent if intent in intents else None

    # Call ----------------------------------------------------------------------------------------------
    def call_outputs(result):
        t, reply = result.transcript, result.reply
        parties = any(s.speaker for s in t.segments)  # a two-party call: stereo, or mono and diarized
        rows = ([[u["speaker"], u["start"], u["end"], u["text"]] for u in t.turns()] if parties
                else [["caller", s.start, s.end, s.text] for s in t.segments])
        timings = " · ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in result.timings.items())
        timings += f" · total {sum(result.timings.values()):.2f} s for {t.duration_s:.1f} s of audio"
        item = (Message(text=result.customer_text, channel="call"), reply)
        return (rows or [["", 0.0, 0.0, "(no speech found)"]], *analysis(reply), reply.text,
                str(result.audio) if result.audio else None, timings, item, choice(reply.intent), "")

    @friendly
    def answer_call(recording: str | None):
        """In two steps: what was said and the drafted reply, then (the slower part) the reply spoken."""
        if not recording:
            raise AgentError("Upload or record a call first.")
        _size_check(recording, MAX_RECORDING_BYTES, "a call recording")
        seconds, _ = audio.probe(recording)
        if seconds is not None and seconds > MAX_CALL_SECONDS:
            raise AgentError(f"{Path(recording).name} lasts {seconds / 60:.0f} minutes: the demo answers calls "
                             f"of up to {MAX_CALL_SECONDS // 60} minutes (use the support-agent call command)")
        result = voice.understand(recording)
        yield call_outputs(result)
        yield call_outputs(voice.speak_reply(result, fresh_dir() / "reply.wav"))

    @friendly
    def speak_edited(text: str):
        if not text.strip():
            raise AgentError("The reply is empty: there is nothing to say.")
        if len(text) > MAX_SPOKEN_CHARS:
            raise AgentError(f"The reply is too long to speak in the demo ({len(text)} characters, "
                             f"limit {MAX_SPOKEN_CHARS}).")
        return str(voice.speak(text, fresh_dir() / "reply.wav"))

    # Email ---------------------------------------------------------------------------------------------
    def read_email(upload: str | None, pasted: str) -> bytes:
        if upload:
            _size_check(upload, email.MAX_MESSAGE_BYTES, "an email")
            return Path(upload).read_bytes()
        if pasted.strip():
            if len(pasted) > email.MAX_MESSAGE_BYTES:
                raise AgentError("The pasted message is too large for the demo.")
            return pasted.encode("utf-8", errors="replace")
        raise AgentError("Upload an .eml file or paste a message first.")

    def email_download(msg) -> str:
        path = fresh_dir() / "reply.eml"
        path.write_bytes(msg.as_bytes())
        return str(path)

    @friendly
    def answer_email(upload: str | None, pasted: str):
        raw = read_email(upload, pasted)
        witness = _Witness(agent)
        result, msg = email.process(raw, witness, voicemail)
        if result.action == "rejected":
            raise AgentError(f"Cannot answer this email: {result.reason}")
        parsed = email.parse(raw)  # for display; process() accepted it, so it parses
        fields = [["From", f"{parsed.sender_display} <{parsed.sender}>".strip()], ["Subject", parsed.subject],
                  ["Date", parsed.date or ""], ["Message-ID", parsed.message_id or ""],
                  ["References", " ".join(parsed.references)],
                  ["Attachments", ", ".join(f"{a.filename} ({a.content_type})" for a in parsed.attachments)]]
        message, reply = witness.seen[-1] if witness.seen else (None, None)
        outcome = f"**{result.action}**" + (f": {result.reason}" if result.reason else "")
        if "transcript" in result.extra:
            outcome += f"\n\nVoicemail transcript: {result.extra['transcript']}"
        draft_text = msg.as_string() if msg is not None else ""
        # What a person edits is the reply body; the customer's quoted text stays as drafted.
        return (fields, parsed.text, outcome, *analysis(reply), result.reply or "", draft_text,
                email_download(msg) if msg is not None else None, (message, reply) if reply else None,
                parsed, choice(reply.intent) if reply else None, "")

    @friendly
    def redraft_email(parsed, edited: str):
        if parsed is None:
            raise AgentError("Answer an email first.")
        if not edited.strip():
            raise AgentError("The reply is empty.")
        msg = email.draft(parsed, edited, settings.from_address)  # a person wrote it: not auto-generated
        return msg.as_string(), email_download(msg)

    # Mailbox -------------------------------------------------------------------------------------------
    def mailbox_items(path: Path):
        """The uploaded mailbox's messages (a zip of .eml files, or an mbox) and how many there are."""
        if zipfile.is_zipfile(path):
            return zip_items(path)
        with open(path, "rb") as f:
            total = sum(1 for line in f if line.startswith(b"From "))
        if total > MAX_MAILBOX_MESSAGES:
            raise AgentError(f"The mailbox holds {total} messages; the demo answers up to {MAX_MAILBOX_MESSAGES}.")
        try:
            return mailstore.read_mbox(path), total
        except AgentError:
            raise AgentError(f"{path.name} is neither an mbox file nor a zip of .eml files") from None

    def zip_items(path: Path):
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(".eml")]
        if not members:
            archive.close()
            raise AgentError(f"{path.name} holds no .eml files")
        if len(members) > MAX_MAILBOX_MESSAGES:
            archive.close()
            raise AgentError(f"{path.name} holds {len(members)} messages; the demo answers up to "
                             f"{MAX_MAILBOX_MESSAGES}")

        def items():
            with archive:
                for m in members:
                    try:  # each message is read capped, so a zip bomb is cut off at the email size limit
                        with archive.open(m) as f:
                            yield from mailstore.read_stream(f, source=m.filename)
                    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
                        raise AgentError(f"{m.filename} cannot be read from the zip file "
                                         f"({str(exc) or type(exc).__name__})") from None

        return items(), len(members)

    def rows_of(results, total: int, witness: _Witness, progress) -> tuple[list, list, list]:
        """The results as table rows, each answered message with its reply (for corrections), and the results."""
        rows, answered, done = [], [], []
        progress((0, total), desc="Answering messages", unit="messages")
        for n, result in enumerate(results, 1):
            progress((n, max(total, n)), desc="Answering messages", unit="messages")
            rows.append([n, result.extra.get("source", ""), result.action, result.intent or "", result.confidence,
                         result.reason or ""])
            answered.append(witness.seen.pop() if witness.seen else None)
            done.append(result)
        return rows, answered, done

    @friendly
    def process_mailbox(upload: str | None, progress=gr.Progress()):
        if not upload:
            raise AgentError("Upload an mbox file or a zip of .eml files first.")
        _size_check(upload, MAX_MAILBOX_BYTES, "a mailbox")
        items, total = mailbox_items(Path(upload))
        run = fresh_dir()
        witness = _Witness(agent)
        # A fresh outbox and state store per run: every upload is answered afresh, and users never share one.
        with mailstore.StateStore(run / "state.sqlite") as state:
            runner = mailstore.Runner(witness, run / "outbox", state, transcribe=voicemail)
            rows, answered, results = rows_of(runner.run(items), total, witness, progress)
        if not rows:
            raise AgentError(f"{Path(upload).name} holds no messages")
        drafts = [(f"{n:04d}-{r.action}-{r.intent or 'none'}.eml", r.draft)
                  for n, r in enumerate(results, 1) if r.draft]
        archive = None
        if drafts:
            archive = run / "drafts.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
                for name, draft in drafts:
                    z.write(draft, name)
        summary = f"{runner.summary()}; {len(drafts)} draft{'s' if len(drafts) != 1 else ''} in the zip"
        return rows, summary, str(archive) if archive else None, answered

    @friendly
    def process_imap(url: str, password: str, drafts: str, escalate_folder: str, insecure: bool,
                     progress=gr.Progress()):
        """The pass ``support-agent email --imap`` makes, exactly once with the same state store (setting
        'outbox'): drafts go to the IMAP drafts folder. The password serves this run and is kept nowhere."""
        if not url.strip():
            raise AgentError("Give the IMAP folder first: imaps://USER@HOST[:PORT]/FOLDER")
        if not password:
            raise AgentError("Type the account's password: it is used for this run only and never stored.")
        address = imap.ImapAddress.parse(url)
        options = ImapOptions(drafts.strip() or None, escalate_folder.strip() or None)
        witness = _Witness(agent)
        witness.settings = imap.with_own_address(settings, address)
        mailbox = imap.ImapMailbox(address, password, insecure, settings.imap_timeout_s)
        with mailstore.StateStore(mailstore.default_state(settings.outbox)) as state:
            try:
                options.drafts = mailbox.open(options.drafts, options.escalate_folder)
                runner = mailstore.Runner(witness, ImapOutbox(mailbox, state, options.drafts), state,
                                          transcribe=voicemail)
                folder = ImapRunner(mailbox, runner, options)
                rows, answered, _ = rows_of(folder.results(), len(folder.pending()), witness, progress)
            finally:
                mailbox.close()
        summary = f"{runner.summary()}; drafts in {options.drafts}" if rows else (
            f"No new messages in {address.folder}: every message there was answered before.")
        return rows, summary, None, answered

    def pick_message(answered, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        item = answered[row] if answered and 0 <= row < len(answered) else None
        if item is None:
            return None, "This message got no reply from the agent (see its action): nothing to correct.", None, ""
        message, reply = item
        return item, f"**Message {row + 1}:** {message.text[:1000]}", choice(reply.intent), reply.text

    # Feedback ------------------------------------------------------------------------------------------
    @friendly
    def save_feedback(item, intent: str | None, edited: str, request: gr.Request):
        """Append a person's correction, with their name, to the feedback file, which the fine-tuning scripts
        read."""
        if not item:
            raise AgentError("Nothing to correct yet: answer a call, an email or a mailbox first.")
        message, reply = item
        if intent and intent not in intents:
            raise AgentError(f"Unknown intent '{intent}'.")
        corrected_intent = intent if intent and intent != reply.intent else None
        corrected_reply = edited.strip() if edited.strip() and edited.strip() != reply.text.strip() else None
        records.append(feedback_file, records.from_reply(message, reply, corrected_intent, corrected_reply,
                                                         user=request.username))
        said = [f"intent corrected to {corrected_intent}" if corrected_intent else f"intent {reply.intent} confirmed",
                "reply edited" if corrected_reply else "reply kept"]
        return f"Saved to {feedback_file.name}: {', '.join(said)}."

    def feedback_controls(prefix: str, item: gr.State, reply_box: gr.Textbox) -> tuple[gr.Dropdown, gr.Markdown]:
        with gr.Row():
            corrected = gr.Dropdown(intents, value=None, label="Correct intent", elem_id=f"{prefix}-corrected-intent",
                                    scale=3)
            save = gr.Button("Save correction", elem_id=f"{prefix}-save", scale=1)
        status = gr.Markdown(elem_id=f"{prefix}-feedback")
        save.click(save_feedback, [item, corrected, reply_box], status, concurrency_id="feedback",
                   api_name=f"{prefix}_feedback")
        return corrected, status

    def analysis_components(prefix: str) -> list:
        intent = gr.Label(label="Intent (confidence, next candidates)", num_top_classes=5, elem_id=f"{prefix}-intent")
        with gr.Row():
            escalation = gr.Textbox(label="Escalate to a person?", elem_id=f"{prefix}-escalation", interactive=False)
            sentiment = gr.Textbox(label="Sentiment", elem_id=f"{prefix}-sentiment", interactive=False)
        entities = gr.Dataframe(headers=["kind", "as written", "value"], label="Entities", interactive=False,
                                elem_id=f"{prefix}-entities")
        return [intent, escalation, sentiment, entities]

    with gr.Blocks(title="Support agent") as app:
        gr.Markdown("# Support agent\nAnswers call recordings and emails with local models. "
                    "Correct any result: corrections are saved for the next fine-tuning run.")
        with gr.Tab("Call"):
            recording = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Call recording",
                                 buttons=["download"], elem_id="call-recording")
            call_button = gr.Button("Answer call", variant="primary", elem_id="call-answer")
            with gr.Row():
                with gr.Column(scale=3):
                    turns = gr.Dataframe(headers=["speaker", "start (s)", "end (s)", "text"], label="Transcript",
                                         interactive=False, wrap=True, column_widths=["14%", "11%", "11%", "64%"],
                                         elem_id="call-transcript")
                    call_reply = gr.Textbox(label="Reply (editable)", lines=5, interactive=True, elem_id="call-reply")
                    speak_button = gr.Button("Speak edited reply", elem_id="call-speak")
                    spoken = gr.Audio(label="Spoken reply", type="filepath", interactive=False, buttons=["download"],
                                      elem_id="call-audio")
                    call_timings = gr.Markdown(elem_id="call-timings")
                with gr.Column(scale=2):
                    call_analysis = analysis_components("call")
                    call_item = gr.State()
                    call_corrected, call_status = feedback_controls("call", call_item, call_reply)
            outputs = [turns, *call_analysis, call_reply, spoken, call_timings, call_item, call_corrected, call_status]
            # Progress, and an error's mark, on one component rather than on every output.
            call_button.click(answer_call, recording, outputs, concurrency_id="models", api_name="answer_call",
                              show_progress_on=turns)
            for event in (recording.upload, recording.stop_recording):  # answered as soon as it arrives
                event(answer_call, recording, outputs, concurrency_id="models", api_name=False,
                      show_progress_on=turns)
            speak_button.click(speak_edited, call_reply, spoken, concurrency_id="models", api_name="speak")
        with gr.Tab("Email"):
            with gr.Row():
                eml = gr.File(label="Email (.eml)", file_types=[".eml", ".txt"], type="filepath", elem_id="email-file")
                pasted = gr.Textbox(label="…or paste the raw message", lines=8, elem_id="email-paste")
            email_button = gr.Button("Draft reply", variant="primary", elem_id="email-answer")
            with gr.Row():
                with gr.Column(scale=3):
                    outcome = gr.Markdown(elem_id="email-outcome")
                    fields = gr.Dataframe(headers=["field", "value"], label="Parsed", interactive=False, wrap=True,
                                          elem_id="email-fields")
                    new_text = gr.Textbox(label="The customer's new text (quoted history and signature removed)",
                                          lines=4, interactive=False, elem_id="email-text")
                    email_reply = gr.Textbox(label="Reply (editable)", lines=6, interactive=True, elem_id="email-reply")
                    redraft = gr.Button("Update draft with edited reply", elem_id="email-redraft")
                    draft_text = gr.Textbox(label="Threaded draft", lines=14, interactive=False, elem_id="email-draft")
                    draft_file = gr.File(label="Download draft (.eml)", interactive=False, elem_id="email-download")
                with gr.Column(scale=2):
                    email_analysis = analysis_components("email")
                    email_item, parsed_state = gr.State(), gr.State()
                    email_corrected, email_status = feedback_controls("email", email_item, email_reply)
            email_button.click(answer_email, [eml, pasted],
                               [fields, new_text, outcome, *email_analysis, email_reply, draft_text, draft_file,
                                email_item, parsed_state, email_corrected, email_status],
                               concurrency_id="models", api_name="answer_email", show_progress_on=fields)
            redraft.click(redraft_email, [parsed_state, email_reply], [draft_text, draft_file], api_name="redraft_email")
        with gr.Tab("Mailbox"):
            box = gr.File(label="Mailbox: an mbox file or a zip of .eml files", file_types=[".mbox", ".zip", ".mbx"],
                          type="filepath", elem_id="mailbox-file")
            box_button = gr.Button("Process mailbox", variant="primary", elem_id="mailbox-answer")
            with gr.Accordion("…or answer an IMAP folder: drafts go to its drafts folder", open=False):
                with gr.Row():
                    imap_url = gr.Textbox(label="IMAP folder", placeholder="imaps://support@mail.example.org/INBOX",
                                          elem_id="imap-url", scale=3)
                    imap_password = gr.Textbox(label="Password (for this run only, never stored)", type="password",
                                               elem_id="imap-password", scale=2)
                with gr.Row():
                    imap_drafts = gr.Textbox(label="Drafts folder", placeholder="the server's Drafts folder",
                                             elem_id="imap-drafts")
                    imap_escalate = gr.Textbox(label="Move escalated messages to (optional)", elem_id="imap-escalate")
                    imap_insecure = gr.Checkbox(label="Accept a self-signed certificate", elem_id="imap-insecure")
                imap_button = gr.Button("Process IMAP folder", variant="primary", elem_id="imap-answer")
            box_summary = gr.Markdown(elem_id="mailbox-summary")
            table = gr.Dataframe(headers=["#", "source", "action", "intent", "confidence", "reason"],
                                 label="Results (select a row to correct it)", interactive=False, wrap=True,
                                 elem_id="mailbox-results")
            drafts_zip = gr.File(label="Download the drafts (.zip)", interactive=False, elem_id="mailbox-download")
            answered, picked = gr.State(), gr.State()
            with gr.Row():
                with gr.Column(scale=3):
                    picked_text = gr.Markdown(elem_id="mailbox-picked")
                    picked_reply = gr.Textbox(label="Reply (editable)", lines=5, interactive=True,
                                              elem_id="mailbox-reply")
                with gr.Column(scale=2):
                    box_corrected, _ = feedback_controls("mailbox", picked, picked_reply)
            # A mailbox run has a queue of its own, so that it does not hold up calls and emails.
            box_button.click(process_mailbox, box, [table, box_summary, drafts_zip, answered],
                             concurrency_id="mailbox", api_name="process_mailbox", show_progress_on=table)
            imap_button.click(process_imap, [imap_url, imap_password, imap_drafts, imap_escalate, imap_insecure],
                              [table, box_summary, drafts_zip, answered], concurrency_id="mailbox",
                              api_name="process_imap", show_progress_on=table)
            table.select(pick_message, answered, [picked, picked_text, box_corrected, picked_reply], api_name=False)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("SUPPORT_AGENT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=os.environ.get("SUPPORT_AGENT_PORT", "7860"))
    p.add_argument("--config", help="settings file (TOML)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set users_file=team.users (repeatable)")
    args = p.parse_args(argv)
    try:
        settings = Settings.load(args.config).replace(**overrides(args.set))
        logs.configure(settings.log_level)
        desk = Desk(settings, args.host)  # refuses to serve beyond loopback without logins, before models load
        app = build(settings)
        # One request at a time per queue (models are shared; two at once would only split the cores): the
        # desk's queues, bounded and timed; Gradio's own is only a last bound.
        desk.serve(app)
        _, url, _ = app.queue(default_concurrency_limit=1, max_size=64).launch(
            server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=THEME,
            max_file_size=MAX_MAILBOX_BYTES, footer_links=["api"], quiet=True, prevent_thread_lock=True,
            **desk.launch_options())
        print(f"demo: serving on {url}", flush=True)
        app.block_thread()
    except (AgentError, OSError) as exc:  # bad settings, a missing model, a port in use
        sys.exit(f"demo: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()
