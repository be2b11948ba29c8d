"""``support-agent``: the command line. Each command prints JSON objects, one per line, on stdout.

Errors are one line on stderr and a non-zero exit; set SUPPORT_AGENT_DEBUG=1 for tracebacks.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import warnings
from pathlib import Path

from agent import logs
from agent.settings import Settings, overrides
from agent.types import AgentError, first_line, without_surrogates
from channels import cli_email

EXIT_ERROR, EXIT_INTERNAL = 1, 70
NO_TEXT = "no text given (pass it as arguments, or '-' to read standard input)"


def _print(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _stdin_text() -> str:
    """Standard input as text: bytes that are not UTF-8 become U+FFFD instead of stopping the run."""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")


def _text_arg(args: argparse.Namespace, field: str = "text") -> str:
    values = getattr(args, field)
    text = _stdin_text() if values in (["-"], "-") else (" ".join(values) if isinstance(values, list) else values)
    if not text.strip():
        raise AgentError(NO_TEXT)
    return without_surrogates(text)


def cmd_call(args, settings):
    from agent.pipeline import Agent
    from channels.rows import call_row
    from channels.voice import VoiceChannel

    out = args.out or f"{Path(args.recording).stem}-reply.wav"
    settings = settings.replace(diarization_speakers=args.speakers)
    _print(call_row(VoiceChannel(Agent(settings)), args.recording, out))
    return 0


def cmd_email(args, settings):
    """One JSON object per input message; a summary line on stderr. Exit 0 once every message got an
    action (rejected ones included); 1 when the source, outbox or state store cannot be used, or when
    the one message on standard input is rejected."""
    error, summary = cli_email.answer_emails(args, settings, _print)
    print(f"support-agent: error: {error}" if error else f"support-agent: {summary}", file=sys.stderr)
    return EXIT_ERROR if error else 0


def cmd_classify(args, settings):
    from agent.pipeline import Agent
    from channels.rows import classify_row

    agent = Agent(settings.replace(intent_model=args.model))
    lines = _stdin_text().splitlines() if args.text in (["-"], []) else map(without_surrogates, args.text)
    printed = 0
    for line in filter(str.strip, lines):
        _print(classify_row(agent, line))
        printed += 1
    if not printed:
        raise AgentError(NO_TEXT)
    return 0


def cmd_reply(args, settings):
    """One message (or one whole RFC 5322 email, which is parsed and answered as the email channel)."""
    from agent.pipeline import Agent
    from channels.rows import message_for, reply_row

    message = message_for(_text_arg(args), args.channel)
    _print(reply_row(Agent(settings.replace(drafter=args.drafter)), message))
    return 0


def cmd_transcribe(args, settings):
    from channels import asr
    from channels.rows import transcribe_paths

    settings = settings.replace(asr_engine=args.engine, asr_model=args.model, asr_device=args.device,
                                asr_beam_size=args.beam_size, diarization_speakers=_speaker_count(args.speakers))
    engine = asr.load_engine(settings)
    failed = 0
    for row in transcribe_paths(engine, args.files, _speakers(args.speakers), args.pack, args.word_timestamps):
        failed += "error" in row
        _print(row)
    if failed:
        print(f"support-agent: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def _speaker_count(value: str | None) -> int | None:
    """``--speakers N``: how many speakers a mono call has; None where the flag is absent or names parties."""
    if value is None or not value.strip().lstrip("-").isdigit():
        return None
    return int(value)


def _speakers(value: str | None) -> list[str]:
    from channels import asr

    named = value is not None and _speaker_count(value) is None
    return [s.strip() for s in value.split(",")] if named else list(asr.DEFAULT_SPEAKERS)


def cmd_batch(args, settings):
    """An archive through one of the commands on Ray; the rows go to OUT/results.parquet, the summary to
    stdout (JSON) and stderr (a line). Exit 0 once every item has its row, failed ones included."""
    from channels import batch

    options = batch.BatchOptions(
        command=args.what, inputs=args.inputs, out=args.out, address=args.address, workers=args.workers,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, resume=args.resume,
        jsonl=args.jsonl, speakers=tuple(_speakers(args.speakers)), pack=args.pack, channel=args.channel,
        speak=args.speak)
    with contextlib.redirect_stdout(sys.stderr):  # Ray's own messages (a worker lost, ...): stdout is ours
        summary = batch.run(options, settings.replace(drafter=args.drafter))
    _print(summary)
    print(f"support-agent: {batch.summary_line(summary)}", file=sys.stderr)
    return 0


def cmd_speak(args, settings):
    """Speak text into a file; the JSON line carries the timings of this run (model loading apart)."""
    import time

    import numpy as np

    from channels import tts

    text = _text_arg(args)
    started = time.perf_counter()
    engine = tts.load_engine(settings.replace(tts_engine=args.engine, tts_voice=args.voice,
                                              tts_speaker_wav=args.speaker_wav, tts_language=args.language))
    loaded = time.perf_counter()
    chunks, first = [], None
    for chunk in engine.stream(text):  # sentence by sentence, as a caller playing it would receive it
        first = first or time.perf_counter()
        chunks.append(chunk)
    done = time.perf_counter()
    samples = np.concatenate(chunks)
    path, rate = tts.export(args.out, samples, engine.sample_rate, args.format)
    duration = len(samples) / engine.sample_rate
    _print({"audio": str(path), "format": args.format, "sample_rate": rate, "duration_s": round(duration, 2),
            "sentences": len(chunks), "engine": engine.name,
            "timings": {"load_s": round(loaded - started, 3), "first_audio_s": round(first - loaded, 3),
                        "synthesis_s": round(done - loaded, 3)},
            "real_time_factor": round((done - loaded) / duration, 3)})
    return 0


def cmd_models(args, settings):
    """Model versions in setting 'models_dir': list, promote (after a side-by-side comparison on the
    fixed held-out set; the table goes to stderr), roll back."""
    from agent import models

    if args.action == "list":
        for kind in models.KINDS:
            promoted = models.pointer(settings.models_dir, kind).get("version")
            _print({"kind": kind, "version": models.SHIPPED, "current": promoted is None})
            for v in models.versions(settings.models_dir, kind):
                _print({"kind": kind, "version": v["id"], "current": v["id"] == promoted, "created": v.get("created"),
                        "base_model": v.get("base_model"), "parent": v.get("parent"),
                        "data_hash": (v.get("data_hash") or "")[:12], "metrics": v.get("metrics"), "path": v["path"]})
    elif args.action == "promote":
        from agent.promotion import promote

        comparison, state = promote(settings.models_dir, args.dir, args.heldout, args.tolerance, args.force)
        if comparison is not None:
            print(comparison.table(), file=sys.stderr)
        _print({"promoted": state["version"], "kind": models.read_version(args.dir)["kind"],
                "previous": (state["history"] or [models.SHIPPED])[-1], "forced": bool(args.force),
                "comparison": comparison.to_dict() if comparison else None})
    else:
        state = models.rollback(settings.models_dir, args.kind)
        _print({"kind": args.kind, "rolled_back": state["rolled_back"], "current": state["version"] or models.SHIPPED})
    return 0


def cmd_users(args, settings):
    """Who may log in to the demo (setting 'users_file'). A new password is one line of standard input
    (asked for without echo on a terminal); it is stored only as a salted Argon2id hash."""
    from channels import users

    if not settings.users_file:
        raise users.unset()
    if args.action == "list":
        for name in users.read(settings.users_file):
            _print({"user": name})
    elif args.action == "remove":
        users.remove(settings.users_file, args.name)
        _print({"user": args.name, "removed": True, "users_file": settings.users_file})
    else:
        users.check_name(args.name)
        users.add(settings.users_file, args.name, _password(), replace=args.replace)
        _print({"user": args.name, "added": True, "users_file": settings.users_file})
    return 0


def _password() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password: ")
    try:
        line = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise AgentError("the password on standard input is not UTF-8 text") from None
    if not line:
        raise AgentError("no password on standard input (one line)")
    return line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="support-agent", description="Local-first customer-service agent.")
    p.add_argument("--config", help="settings file (TOML); default ./support-agent.toml if present")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set asr_model=tiny.en (repeatable)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default) or ERROR; logs are JSON on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_call(sub)
    cli_email.add_parser(sub, cmd_email)
    _add_classify(sub)
    _add_reply(sub)
    _add_transcribe(sub)
    _add_speak(sub)
    _add_batch(sub)
    _add_models(sub)
    _add_users(sub)
    return p


def _add_call(sub) -> None:
    """The call command's arguments."""
    c = sub.add_parser("call", help="answer a call recording: transcript, intent, reply, spoken reply")
    c.add_argument("recording")
    c.add_argument("--out", help="where to write the spoken reply (default: RECORDING-reply.wav here)")
    c.add_argument("--speakers", metavar="N", type=int, help="speakers on a mono recording, told apart by their voices "
                   "(default: setting 'diarization_speakers', 2; 1 answers the whole recording)")
    c.set_defaults(func=cmd_call)


def _add_classify(sub) -> None:
    """The classify command's arguments."""
    k = sub.add_parser("classify", help="intent, confidence, candidates, escalation and entities per line")
    k.add_argument("text", nargs="*", help="messages (one per argument), or '-' / nothing to read one per line from stdin")
    k.add_argument("--model", help="intent model directory (default: setting 'intent_model')")
    k.set_defaults(func=cmd_classify)


def _add_reply(sub) -> None:
    """The reply command's arguments."""
    r = sub.add_parser("reply", help="draft a reply to one message")
    r.add_argument("text", nargs="+", help="the message, or '-' to read standard input (a message or a whole email)")
    r.add_argument("--drafter", choices=("composer", "generator"), help="default: setting 'drafter'")
    r.add_argument("--channel", choices=("text", "email", "call"), default="text",
                   help="how the reply is framed (an email on standard input is always 'email')")
    r.set_defaults(func=cmd_reply)


def _add_transcribe(sub) -> None:
    """The transcribe command's arguments."""
    t = sub.add_parser("transcribe", help="transcribe audio files, one JSON object per file")
    t.add_argument("files", nargs="+")
    t.add_argument("--engine", help="faster-whisper, openai-whisper or auto (default: setting 'asr_engine')")
    t.add_argument("--model", help="base, tiny.en (packaged), a Whisper size, or a path (default: 'asr_model')")
    t.add_argument("--device", help="auto, cpu or cuda (default: setting 'asr_device')")
    t.add_argument("--beam-size", type=int, help="beam width (default: setting 'asr_beam_size')")
    t.add_argument("--speakers", metavar="N|NAMES",
                   help="a number: speakers on a mono recording, told apart by their voices (default: setting "
                   "'diarization_speakers', 2; 1 turns it off); names: who is on each channel of a stereo call, "
                   "comma-separated (default: customer,agent: left is the customer), also the labels on mono")
    t.add_argument("--word-timestamps", action="store_true",
                   help="add each segment's words with their start, end and probability")
    t.add_argument("--no-pack", dest="pack", action="store_false",
                   help="recognise each short recording in its own Whisper window (default: several share one)")
    t.set_defaults(func=cmd_transcribe)


def _add_speak(sub) -> None:
    """The speak command's arguments."""
    s = sub.add_parser("speak", help="speak text into an audio file")
    s.add_argument("text", nargs="+", help="the text, or '-' to read standard input")
    s.add_argument("--out", required=True, help="the WAV file to write")
    s.add_argument("--engine", help="piper or coqui (default: setting 'tts_engine')")
    s.add_argument("--voice", help="piper: en_US-joe-medium (packaged) or a .onnx voice; coqui: MODEL[:SPEAKER], "
                   "a model name or a checkpoint (default: setting 'tts_voice')")
    s.add_argument("--speaker-wav", help="coqui, a cloning model (XTTS v2): a recording of the voice to speak in "
                   "(default: setting 'tts_speaker_wav')")
    s.add_argument("--language", help="coqui, a multilingual model: the language to speak, e.g. en, de, zh-cn "
                   "(default: setting 'tts_language', else 'language')")
    s.add_argument("--format", choices=("wav", "telephone", "telephone-pcm"), default="wav",
                   help="wav: 16-bit at the voice's rate, -16 LUFS; telephone: 8 kHz mu-law WAV, -19 LUFS; "
                   "telephone-pcm: 8 kHz 16-bit WAV, -19 LUFS")
    s.set_defaults(func=cmd_speak)


def _add_batch(sub) -> None:
    """The batch command's arguments."""
    b = sub.add_parser("batch", help="an archive of recordings or messages through transcribe, call, classify "
                       "or reply on Ray (this machine, or a cluster with --address)")
    b.add_argument("what", choices=("transcribe", "call", "classify", "reply"), help="the command each item goes through")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folders, files or glob patterns of recordings or messages; manifests (.csv, .jsonl, .parquet) "
                   "with a 'path' or 'text' column; mbox files, Maildirs, .txt (a message a line)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder: DIR/results.parquet, a row per item")
    b.add_argument("--address", help="join this Ray cluster ('auto', HOST:PORT or ray://HOST:PORT) instead of "
                   "starting a Ray instance on this machine")
    b.add_argument("--workers", type=int, default=0, help="workers (each loads the models once; default: as many "
                   "as the cores, or GPUs, allow)")
    b.add_argument("--cpus-per-worker", type=int, default=1, help="cores each worker runs on (default 1)")
    b.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPU share of each worker (e.g. 1 or 0.5); "
                   "default: no GPU")
    b.add_argument("--resume", action="store_true", help="finish the run that wrote DIR: items already written "
                   "(same source and content) are not done again")
    b.add_argument("--jsonl", metavar="FILE", help="also write the rows as JSON lines to FILE")
    b.add_argument("--speakers", help="transcribe: who is on each channel of a stereo call (default: customer,agent)")
    b.add_argument("--no-pack", dest="pack", action="store_false",
                   help="transcribe: recognise each short recording in its own Whisper window")
    b.add_argument("--drafter", choices=("composer", "generator"), help="reply, call: default: setting 'drafter'")
    b.add_argument("--channel", choices=("text", "email", "call"), default="text",
                   help="reply: how replies are framed (an email is always 'email')")
    b.add_argument("--speak", metavar="FOLDER", help="call: speak each reply into FOLDER/KEY.wav (KEY: the "
                   "recording's content hash)")
    b.set_defaults(func=cmd_batch)


def _add_models(sub) -> None:
    """The models command's arguments."""
    m = sub.add_parser("models", help="model versions: list, promote a trained one, roll back")
    m.set_defaults(func=cmd_models)
    ma = m.add_subparsers(dest="action", required=True, metavar="ACTION")
    ma.add_parser("list", help="every stored version, and which one is in use")
    mp = ma.add_parser("promote", help="use a trained version if it is not worse on the held-out set")
    mp.add_argument("dir", help="a trained model directory (with version.json)")
    mp.add_argument("--heldout", metavar="FILE", help="labelled held-out file (default: the repository's fixed one)")
    mp.add_argument("--tolerance", type=float, help="how much lower a metric may be (default: 0.005, half a point)")
    mp.add_argument("--force", action="store_true", help="promote even if worse")
    mr = ma.add_parser("rollback", help="go back to the version promoted before the current one")
    mr.add_argument("--kind", choices=("intent", "generator"), default="intent")


def _add_users(sub) -> None:
    """The users command's arguments."""
    u = sub.add_parser("users", help="who may log in to the demo (setting 'users_file'): add, remove, list")
    u.set_defaults(func=cmd_users)
    ua = u.add_subparsers(dest="action", required=True, metavar="ACTION")
    uadd = ua.add_parser("add", help="add a user; the password is one line of standard input")
    uadd.add_argument("name")
    uadd.add_argument("--replace", action="store_true", help="set a new password for an existing user")
    ua.add_parser("remove", help="remove a user (their sessions end at their next request)").add_argument("name")
    ua.add_parser("list", help="one JSON line per user")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("SUPPORT_AGENT_DEBUG"))
    if not debug:
        warnings.filterwarnings("ignore")  # library advisories would break the one-line error contract
    try:
        pairs = overrides(args.set)
        if "imap_password" in pairs:  # the process list and the shell's history would show it
            raise AgentError("the IMAP password is never taken from the command line: set "
                             "SUPPORT_AGENT_IMAP_PASSWORD, use ~/.netrc or the settings file")
        settings = Settings.load(args.config).replace(**pairs, log_level=args.log_level)
        logs.configure(settings.log_level)
        status = args.func(args, settings)
        sys.stdout.flush()  # here, so that a reader gone away is met below and not at interpreter exit
        return status
    except BrokenPipeError:
        # The reader stopped reading ("support-agent classify - | head"): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own final flush must not fail again
        return 128 + signal.SIGPIPE
    except AgentError as exc:
        print(f"support-agent: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("support-agent: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"support-agent: internal error: {type(exc).__name__}: {first_line(exc)} "
              "(set SUPPORT_AGENT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
