"""The support desk in the browser: answer a call recording, an email or a whole mailbox, and correct the agent.

    python demo.py [--host 127.0.0.1] [--port 7860] [--config FILE] [--set KEY=VALUE ...]

Serves on 127.0.0.1 unless told otherwise (``--host``, or ``SUPPORT_AGENT_HOST`` / ``SUPPORT_AGENT_PORT``); never
a public share link, and no analytics. Models load once, before the first page is served, and are shared by
every request. Logins (setting ``users_file``; required beyond loopback), the audit trail and the queues' limits
are ``channels.desk``'s. Corrections are appended to the ``feedback_file`` setting with the user's name.

This module is the page's layout; what its buttons do is ``channels.demo_handlers``.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # set before gradio is imported: no calls out from the demo

import gradio as gr  # noqa: E402

from agent import logs  # noqa: E402
from agent.settings import Settings, overrides  # noqa: E402
from agent.types import AgentError  # noqa: E402
from channels.demo_handlers import MAX_CALL_SECONDS, MAX_MAILBOX_BYTES, Handlers, analysis  # noqa: E402, F401
from channels.desk import Desk  # noqa: E402

# Everything in the page uses the fonts the browser has: the default theme would fetch Google Fonts.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def feedback_controls(h: Handlers, prefix: str, item: gr.State, reply_box: gr.Textbox) -> tuple[gr.Dropdown,
                                                                                                 gr.Markdown]:
    """The correction row under a reply: the intent list and the save button, with its status line."""
    with gr.Row():
        corrected = gr.Dropdown(h.intents, value=None, label="Correct intent", elem_id=f"{prefix}-corrected-intent",
                                scale=3)
        save = gr.Button("Save correction", elem_id=f"{prefix}-save", scale=1)
    status = gr.Markdown(elem_id=f"{prefix}-feedback")
    save.click(h.save_feedback, [item, corrected, reply_box], status, concurrency_id="feedback",
               api_name=f"{prefix}_feedback")
    return corrected, status


def analysis_components(prefix: str) -> list:
    """What the agent understood (see ``analysis``): intent, escalation, sentiment, entities."""
    intent = gr.Label(label="Intent (confidence, next candidates)", num_top_classes=5, elem_id=f"{prefix}-intent")
    with gr.Row():
        escalation = gr.Textbox(label="Escalate to a person?", elem_id=f"{prefix}-escalation", interactive=False)
        sentiment = gr.Textbox(label="Sentiment", elem_id=f"{prefix}-sentiment", interactive=False)
    entities = gr.Dataframe(headers=["kind", "as written", "value"], label="Entities", interactive=False,
                            elem_id=f"{prefix}-entities")
    return [intent, escalation, sentiment, entities]


def call_tab(h: Handlers) -> None:
    recording = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Call recording",
                         buttons=["download"], elem_id="call-recording")
    call_button = gr.Button("Answer call", variant="primary", elem_id="call-answer")
    with gr.Row():
        with gr.Column(scale=3):
            turns = gr.Dataframe(headers=["speaker", "start (s)", "end (s)", "text"], label="Transcript",
                                 interactive=False, wrap=True, column_widths=["14%", "11%", "11%", "64%"],
                                 elem_id="call-transcript")
            reply = gr.Textbox(label="Reply (editable)", lines=5, interactive=True, elem_id="call-reply")
            speak_button = gr.Button("Speak edited reply", elem_id="call-speak")
            spoken = gr.Audio(label="Spoken reply", type="filepath", interactive=False, buttons=["download"],
                              elem_id="call-audio")
            timings = gr.Markdown(elem_id="call-timings")
        with gr.Column(scale=2):
            understood = analysis_components("call")
            item = gr.State()
            corrected, status = feedback_controls(h, "call", item, reply)
    outputs = [turns, *understood, reply, spoken, timings, item, corrected, status]
    # Progress, and an error's mark, on one component rather than on every output.
    call_button.click(h.answer_call, recording, outputs, concurrency_id="models", api_name="answer_call",
                      show_progress_on=turns)
    for event in (recording.upload, recording.stop_recording):  # answered as soon as it arrives
        event(h.answer_call, recording, outputs, concurrency_id="models", api_name=False, show_progress_on=turns)
    speak_button.click(h.speak_edited, reply, spoken, concurrency_id="models", api_name="speak")


def email_tab(h: Handlers) -> None:
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
            reply = gr.Textbox(label="Reply (editable)", lines=6, interactive=True, elem_id="email-reply")
            redraft = gr.Button("Update draft with edited reply", elem_id="email-redraft")
            draft_text = gr.Textbox(label="Threaded draft", lines=14, interactive=False, elem_id="email-draft")
            draft_file = gr.File(label="Download draft (.eml)", interactive=False, elem_id="email-download")
        with gr.Column(scale=2):
            understood = analysis_components("email")
            item, parsed = gr.State(), gr.State()
            corrected, status = feedback_controls(h, "email", item, reply)
    email_button.click(h.answer_email, [eml, pasted],
                       [fields, new_text, outcome, *understood, reply, draft_text, draft_file, item, parsed,
                        corrected, status],
                       concurrency_id="models", api_name="answer_email", show_progress_on=fields)
    redraft.click(h.redraft_email, [parsed, reply], [draft_text, draft_file], api_name="redraft_email")


def imap_controls() -> tuple[gr.Button, list]:
    """The IMAP folder form, folded under the mailbox upload: its button and its inputs."""
    with gr.Accordion("…or answer an IMAP folder: drafts go to its drafts folder", open=False):
        with gr.Row():
            url = gr.Textbox(label="IMAP folder", placeholder="imaps://support@mail.example.org/INBOX",
                             elem_id="imap-url", scale=3)
            password = gr.Textbox(label="Password (for this run only, never stored)", type="password",
                                  elem_id="imap-password", scale=2)
        with gr.Row():
            drafts = gr.Textbox(label="Drafts folder", placeholder="the server's Drafts folder", elem_id="imap-drafts")
            escalate = gr.Textbox(label="Move escalated messages to (optional)", elem_id="imap-escalate")
            insecure = gr.Checkbox(label="Accept a self-signed certificate", elem_id="imap-insecure")
        button = gr.Button("Process IMAP folder", variant="primary", elem_id="imap-answer")
    return button, [url, password, drafts, escalate, insecure]


def mailbox_tab(h: Handlers) -> None:
    box = gr.File(label="Mailbox: an mbox file or a zip of .eml files", file_types=[".mbox", ".zip", ".mbx"],
                  type="filepath", elem_id="mailbox-file")
    box_button = gr.Button("Process mailbox", variant="primary", elem_id="mailbox-answer")
    imap_button, imap_inputs = imap_controls()
    summary = gr.Markdown(elem_id="mailbox-summary")
    table = gr.Dataframe(headers=["#", "source", "action", "intent", "confidence", "reason"],
                         label="Results (select a row to correct it)", interactive=False, wrap=True,
                         elem_id="mailbox-results")
    drafts_zip = gr.File(label="Download the drafts (.zip)", interactive=False, elem_id="mailbox-download")
    answered, picked = gr.State(), gr.State()
    outputs = [table, summary, drafts_zip, answered]
    with gr.Row():
        with gr.Column(scale=3):
            picked_text = gr.Markdown(elem_id="mailbox-picked")
            picked_reply = gr.Textbox(label="Reply (editable)", lines=5, interactive=True, elem_id="mailbox-reply")
        with gr.Column(scale=2):
            corrected, _ = feedback_controls(h, "mailbox", picked, picked_reply)
    # A mailbox run has a queue of its own, so that it does not hold up calls and emails.
    box_button.click(h.process_mailbox, box, outputs, concurrency_id="mailbox", api_name="process_mailbox",
                     show_progress_on=table)
    imap_button.click(h.process_imap, imap_inputs, outputs, concurrency_id="mailbox", api_name="process_imap",
                      show_progress_on=table)
    table.select(h.pick_message, answered, [picked, picked_text, corrected, picked_reply], api_name=False)


def build(settings: Settings) -> gr.Blocks:
    """The page, with the models loaded."""
    h = Handlers(settings)
    with gr.Blocks(title="Support agent") as app:
        gr.Markdown("# Support agent\nAnswers call recordings and emails with local models. "
                    "Correct any result: corrections are saved for the next fine-tuning run.")
        with gr.Tab("Call"):
            call_tab(h)
        with gr.Tab("Email"):
            email_tab(h)
        with gr.Tab("Mailbox"):
            mailbox_tab(h)
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
