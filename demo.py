"""The support desk in the browser: upload a call recording or an email, see what the agent does.

    python demo.py [--host 127.0.0.1] [--port 7860]

Models load once at start and are shared between requests; requests are queued.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out from the demo

import gradio as gr  # noqa: E402

from agent import logs  # noqa: E402
from agent.pipeline import Agent  # noqa: E402
from agent.settings import Settings  # noqa: E402
from agent.types import AgentError  # noqa: E402
from channels import email  # noqa: E402
from channels.voice import VoiceChannel  # noqa: E402

MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def build(settings: Settings) -> gr.Blocks:
    agent = Agent(settings)
    voice = VoiceChannel(agent).warm_up()
    workdir = Path(tempfile.mkdtemp(prefix="support-agent-demo-"))

    def answer_call(recording: str | None):
        if not recording:
            raise gr.Error("Upload or record a call first.")
        try:
            result = voice.answer(recording, workdir / f"{Path(recording).stem}-reply.wav")
        except AgentError as exc:  # name the upload, not Gradio's temporary copy of it
            raise gr.Error(str(exc).replace(recording, Path(recording).name)) from None
        r = result.reply
        labels = {r.intent: r.confidence, **{s.intent: s.probability for s in r.top}}
        turns = "\n".join(f"[{s.start:6.2f}-{s.end:6.2f}] {s.text}" for s in result.transcript.segments)
        details = {"escalate": r.escalate, "reason": r.reason, "sentiment": r.sentiment,
                   "entities": [vars(e) for e in r.entities], "timings_s": result.timings}
        return turns or "(no speech found)", labels, r.text, str(result.audio), details

    def answer_email(upload: str | None, pasted: str):
        if upload:
            if Path(upload).stat().st_size > MAX_UPLOAD_BYTES:
                raise gr.Error("That file is too large for the demo (limit 100 MB).")
            raw = Path(upload).read_bytes()
        elif pasted.strip():
            raw = pasted.encode("utf-8")
        else:
            raise gr.Error("Upload an .eml file or paste a message first.")
        result = email.handle(raw, agent, workdir / "outbox")
        if result.action == "rejected":
            raise gr.Error(f"Not answered: {result.reason}")
        draft_text = Path(result.draft).read_text(encoding="utf-8", errors="replace") if result.draft else ""
        download = None
        if result.draft:
            download = workdir / f"draft-{Path(result.draft).name.split(':')[0]}.eml"
            download.write_bytes(Path(result.draft).read_bytes())
        return result.to_dict(), draft_text, str(download) if download else None

    with gr.Blocks(title="Support agent") as app:
        gr.Markdown("# Support agent\nAnswers call recordings and emails with local models.")
        with gr.Tab("Call"):
            recording = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Call recording")
            call_button = gr.Button("Answer call", variant="primary")
            transcript = gr.Textbox(label="Transcript", lines=4)
            intent = gr.Label(label="Intent", num_top_classes=5)
            reply = gr.Textbox(label="Reply", lines=5)
            spoken = gr.Audio(label="Spoken reply", type="filepath")
            details = gr.JSON(label="Details")
            call_button.click(answer_call, recording, [transcript, intent, reply, spoken, details])
        with gr.Tab("Email"):
            eml = gr.File(label="Email (.eml)", file_types=[".eml", ".txt"], type="filepath")
            pasted = gr.Textbox(label="…or paste the raw message", lines=8)
            email_button = gr.Button("Draft reply", variant="primary")
            outcome = gr.JSON(label="Result")
            draft_text = gr.Textbox(label="Threaded draft", lines=14)
            draft_file = gr.File(label="Download draft")
            email_button.click(answer_email, [eml, pasted], [outcome, draft_text, draft_file])
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("SUPPORT_AGENT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SUPPORT_AGENT_PORT", "7860")))
    p.add_argument("--config", help="settings file (TOML)")
    args = p.parse_args(argv)
    settings = Settings.load(args.config)
    logs.configure(settings.log_level)
    app = build(settings)
    app.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, share=False)


if __name__ == "__main__":
    main()
