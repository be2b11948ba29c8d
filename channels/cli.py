"""``support-agent``: the command line. Each command prints JSON objects, one per line, on stdout.

Errors are one line on stderr and a non-zero exit; set SUPPORT_AGENT_DEBUG=1 for tracebacks.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from agent import logs
from agent.settings import Settings
from agent.types import AgentError

EXIT_ERROR, EXIT_INTERNAL = 1, 70


def _print(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _text_arg(args: argparse.Namespace, field: str = "text") -> str:
    values = getattr(args, field)
    text = sys.stdin.read() if values in (["-"], "-") else (" ".join(values) if isinstance(values, list) else values)
    if not text.strip():
        raise AgentError("no text given (pass it as arguments, or '-' to read standard input)")
    return text


def cmd_call(args, settings):
    from agent.pipeline import Agent
    from channels.voice import VoiceChannel

    out = args.out or f"{Path(args.recording).stem}-reply.wav"
    result = VoiceChannel(Agent(settings)).answer(args.recording, out)
    _print(result.summary())
    return 0


def cmd_email(args, settings):
    from agent.pipeline import Agent
    from channels import email

    if args.source != "-":
        raise AgentError("only '-' (one message on standard input) is supported as a source so far")
    raw = sys.stdin.buffer.read(email.MAX_MESSAGE_BYTES + 1)
    result = email.handle(raw, Agent(settings), args.outbox or settings.outbox)
    _print(result.to_dict())
    if result.action == "rejected":
        print(f"support-agent: error: {result.reason}", file=sys.stderr)
        return EXIT_ERROR
    print(f"support-agent: 1 message: {result.action}", file=sys.stderr)
    return 0


def cmd_classify(args, settings):
    from agent.pipeline import Agent

    agent = Agent(settings.replace(intent_model=args.model))
    lines = sys.stdin.read().splitlines() if args.text in (["-"], []) else args.text
    for line in filter(str.strip, lines):
        _print({"text": line, **agent.understand(line).to_dict()})
    return 0


def cmd_reply(args, settings):
    from agent.pipeline import Agent
    from agent.types import Message

    r = Agent(settings).handle(Message(text=_text_arg(args), channel="text"))
    _print({"intent": r.intent, "confidence": r.confidence, "reply": r.text, "source": r.source,
            "passages": r.passages, "escalate": r.escalate, "reason": r.reason})
    return 0


def cmd_transcribe(args, settings):
    from channels import asr, audio

    settings = settings.replace(asr_engine=args.engine, asr_model=args.model, asr_device=args.device,
                                asr_beam_size=args.beam_size)
    engine = asr.load_engine(settings)
    failed = 0
    for path in args.files:
        try:
            t = engine.transcribe(audio.decode(path))
        except AgentError as exc:
            failed += 1
            _print({"file": path, "error": str(exc)})
            continue
        d = t.to_dict()
        _print({"file": path, **{k: d[k] for k in ("text", "language", "duration_s", "segments", "engine",
                                                   "model", "seconds")}})
    if failed:
        print(f"support-agent: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def cmd_speak(args, settings):
    from channels import audio, tts

    engine = tts.load_engine(settings.replace(tts_engine=args.engine, tts_voice=args.voice))
    samples = engine.synthesize(_text_arg(args))
    if args.format == "telephone":
        path = audio.encode(args.out, audio.resample(samples, engine.sample_rate, 8000), 8000, codec="pcm_mulaw")
        rate = 8000
    else:
        path, rate = audio.write_wav(args.out, samples, engine.sample_rate), engine.sample_rate
    _print({"audio": str(path), "sample_rate": rate, "duration_s": round(len(samples) / engine.sample_rate, 2)})
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="support-agent", description="Local-first customer-service agent.")
    p.add_argument("--config", help="settings file (TOML); default ./support-agent.toml if present")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set asr_model=tiny.en (repeatable)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default) or ERROR; logs are JSON on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("call", help="answer a call recording: transcript, intent, reply, spoken reply")
    c.add_argument("recording")
    c.add_argument("--out", help="where to write the spoken reply (default: RECORDING-reply.wav here)")
    c.set_defaults(func=cmd_call)

    e = sub.add_parser("email", help="answer an email with a threaded draft in an outbox Maildir")
    e.add_argument("source", help="'-': one RFC 5322 message on standard input")
    e.add_argument("--outbox", help="outbox Maildir for drafts (default: setting 'outbox')")
    e.set_defaults(func=cmd_email)

    k = sub.add_parser("classify", help="intent, confidence, candidates, escalation and entities per line")
    k.add_argument("text", nargs="*", help="messages (one per argument), or '-' / nothing to read one per line from stdin")
    k.add_argument("--model", help="intent model directory (default: setting 'intent_model')")
    k.set_defaults(func=cmd_classify)

    r = sub.add_parser("reply", help="draft a reply to one message")
    r.add_argument("text", nargs="+", help="the message, or '-' to read standard input")
    r.set_defaults(func=cmd_reply)

    t = sub.add_parser("transcribe", help="transcribe audio files, one JSON object per file")
    t.add_argument("files", nargs="+")
    t.add_argument("--engine")
    t.add_argument("--model")
    t.add_argument("--device")
    t.add_argument("--beam-size", type=int)
    t.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("speak", help="speak text into an audio file")
    s.add_argument("text", nargs="+", help="the text, or '-' to read standard input")
    s.add_argument("--out", required=True)
    s.add_argument("--engine")
    s.add_argument("--voice")
    s.add_argument("--format", choices=("wav", "telephone"), default="wav",
                   help="wav at the voice's rate, or telephone: 8 kHz mu-law WAV")
    s.set_defaults(func=cmd_speak)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("SUPPORT_AGENT_DEBUG"))
    if not debug:
        warnings.filterwarnings("ignore")  # library advisories would break the one-line error contract
    try:
        overrides = dict(item.split("=", 1) for item in args.set if "=" in item)
        if len(overrides) != len(args.set):
            raise AgentError("--set takes KEY=VALUE")
        settings = Settings.load(args.config).replace(**overrides, log_level=args.log_level)
        logs.configure(settings.log_level)
        return args.func(args, settings)
    except AgentError as exc:
        print(f"support-agent: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("support-agent: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"support-agent: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set SUPPORT_AGENT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
