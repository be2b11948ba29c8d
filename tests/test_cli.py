"""``support-agent`` end to end, as a user runs it, on the packaged weights."""
import email
import json
import os
import subprocess

import numpy as np
import pytest

from agent.settings import Settings
from channels import audio
from conftest import CARD_REQUEST, CLI, REPO, cli_environment, one_line_error, run_cli, wer
from test_email import ANNA


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_call_answers_a_spoken_request(tmp_path, spoken_request, cli_env, cache_dir, suffix):
    recording = audio.encode(tmp_path / f"request{suffix}", audio.decode(spoken_request), audio.SAMPLE_RATE)
    proc = run_cli("call", str(recording), "--out", str(tmp_path / "reply.wav"), env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert {"transcript", "intent", "confidence", "reply", "audio"} <= set(result)
    assert wer(CARD_REQUEST, result["transcript"]) <= 0.1, result["transcript"]
    assert result["intent"] == "card_arrival" and result["confidence"] > 0.8
    assert "3 to 5 working days" in result["reply"]
    # The spoken reply is real speech that says the reply: hear it back with Whisper tiny.en.
    from channels.asr import FasterWhisperEngine

    heard = FasterWhisperEngine(Settings(asr_model="tiny.en", cache_dir=str(cache_dir))).transcribe(
        audio.decode(result["audio"]))
    assert wer(result["reply"], heard.text) <= 0.15, heard.text


def test_email_from_stdin_writes_a_threaded_draft(tmp_path, cli_env):
    proc = run_cli("email", "-", "--outbox", str(tmp_path / "outbox"), stdin=ANNA, env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["action"] == "replied" and result["message_id"] == "<CAF1234@mail.example.org>"
    assert {"message_id", "action", "intent", "confidence", "reply"} <= set(result)
    draft = email.message_from_bytes(open(result["draft"], "rb").read())
    assert draft["In-Reply-To"] == result["message_id"] and draft["Subject"] == "Re: Card payment"


def test_garbage_on_email_stdin_is_one_line_error(tmp_path, cli_env):
    proc = run_cli("email", "-", "--outbox", str(tmp_path / "o"), stdin=np.random.default_rng(2).bytes(4000),
                   env=cli_env)
    assert "not an email message" in one_line_error(proc)
    assert json.loads(proc.stdout)["action"] == "rejected"


@pytest.mark.parametrize("content, message", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00" + bytes(range(256)) * 8, "not a readable audio file"),
    (b"Dear support, this is a text file.\n" * 30, "not a readable audio file"),
])
def test_bad_recordings_are_one_line_errors(tmp_path, cli_env, content, message):
    bad = tmp_path / "call.wav"
    bad.write_bytes(content)
    assert message in one_line_error(run_cli("call", str(bad), "--out", str(tmp_path / "r.wav"), env=cli_env))
    assert not (tmp_path / "r.wav").exists()


def test_classify_reply_transcribe_and_speak(tmp_path, spoken_request, cli_env):
    proc = run_cli("classify", "my card has not arrived yet", "what's the weather in Rome", env=cli_env)
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first["intent"] == "card_arrival" and not first["escalate"] and second["escalate"]
    assert {"text", "intent", "confidence", "top", "escalate", "reason", "entities"} <= set(first)

    # Bytes that are not UTF-8 are replaced, not fatal; blank lines are skipped; no text at all is an error.
    proc = run_cli("classify", "-", stdin=b"\xff\xfe my card was declined\n\nhow do I change my PIN?\n", env=cli_env)
    broken, pin = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and broken["text"] == "\ufffd\ufffd my card was declined" and pin["intent"] == "change_pin"
    assert "no text given" in one_line_error(run_cli("classify", "-", stdin=b"\n  \n", env=cli_env))

    proc = run_cli("reply", "-", stdin=b"I was charged twice for 12 pounds", env=cli_env)
    reply = json.loads(proc.stdout)
    assert reply["intent"] == "transaction_charged_twice" and "£12" in reply["reply"] and reply["passages"]

    missing = tmp_path / "missing.wav"
    proc = run_cli("transcribe", str(spoken_request), str(missing), "--model", "tiny.en", env=cli_env)
    ok, failed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr.decode()
    assert wer(CARD_REQUEST, ok["text"]) <= 0.1 and ok["model"] == "tiny.en" and ok["segments"]
    assert failed == {"file": str(missing), "error": f"{missing}: no such file"}

    proc = run_cli("speak", "Your card is on its way.", "--out", str(tmp_path / "s.wav"), "--format", "telephone",
                   env=cli_env)
    assert json.loads(proc.stdout)["sample_rate"] == 8000 and audio.decode(tmp_path / "s.wav").size > 8000


def test_usage_errors_do_not_trace(cli_env):
    proc = run_cli("speak", " ", "--out", "/tmp/x.wav", env=cli_env)
    assert "no text given" in one_line_error(proc)
    proc = run_cli("--set", "asr_beam_size=wide", "reply", "hi", env=cli_env)
    assert "must be int" in one_line_error(proc)
    proc = run_cli("transcribe", "x.wav", "--engine", "nope", env=cli_env)
    assert "unknown ASR engine 'nope' (available: faster-whisper, openai-whisper" in one_line_error(proc)


def test_a_reader_that_stops_early_ends_classify_quietly(cli_env):
    """`support-agent classify - | head -1`: once the reader has gone, stop as Unix tools do (status 141,
    SIGPIPE's), with no 'internal error' on stderr."""
    reader, writer = os.pipe()
    proc = subprocess.Popen([*CLI, "classify", "-"], stdin=subprocess.PIPE, stdout=writer, stderr=subprocess.PIPE,
                            env=cli_environment(cli_env), cwd=REPO)
    os.close(writer)
    with os.fdopen(reader, "rb") as out:
        proc.stdin.write(b"my card has not arrived\n" * 2000)
        proc.stdin.close()
        assert json.loads(out.readline())["intent"] == "card_arrival"
    assert proc.wait(timeout=300) == 141
    assert proc.stderr.read() == b""
