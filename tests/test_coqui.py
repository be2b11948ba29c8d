"""The Coqui engine on a real Coqui checkpoint: a small VITS with random weights built with Coqui's own config
classes and saved as its trainer saves one (``coqui_vits``), loaded exactly as a downloaded voice is. The
voice says nothing intelligible, so these tests check the loading and synthesis path, the audio's shape,
rate, streaming and files, and the errors; what the voice says is checked on Piper (test_tts.py)."""
import json
import subprocess
import sys

import av
import numpy as np
import pytest

from agent.types import AgentError
from channels import audio, tts, tts_coqui as coqui_tts
from channels.speech_text import sentences
from conftest import cli_environment, one_line_error, run_cli

REPLY = "Your refund of €42.90 was sent on 12/03/2026. Please call 0800 555 0199 if it has not arrived."


def test_a_trainer_checkpoint_loads_and_speaks(coqui, coqui_vits):
    assert {p.name for p in coqui_vits.iterdir()} == {"config.json", "model.pth"}
    assert (coqui.name, coqui.sample_rate, coqui.speaker, coqui.language) == ("coqui", 22050, None, None)
    samples = coqui.synthesize("Your card is on its way.")
    assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
    assert 0.1 < len(samples) / coqui.sample_rate < 30 and 1e-3 < float(np.abs(samples).max()) <= 1.0


def test_the_checkpoint_file_itself_loads_too(settings, coqui_vits):
    engine = tts.load_engine(settings.replace(tts_engine="coqui", tts_voice=str(coqui_vits / "model.pth")))
    assert engine.sample_rate == 22050 and len(engine.synthesize("Hello."))


def test_coqui_streams_the_prepared_text_sentence_by_sentence(coqui, monkeypatch):
    heard = []
    speak = coqui.tts.tts
    monkeypatch.setattr(coqui.tts, "tts", lambda text, **kw: heard.append(text) or speak(text, **kw))
    chunks = list(coqui.stream(REPLY))
    assert heard == sentences(REPLY) and len(chunks) == 2
    assert "forty-two point nine zero euros" in heard[0] and "zero eight zero zero" in heard[1]  # Piper's text preparation
    pause = int(coqui.pause_s * coqui.sample_rate)
    assert not chunks[0][-pause:].any() and chunks[1][-pause:].any()  # a pause between sentences, none at the end
    assert np.array_equal(coqui.synthesize(REPLY), np.concatenate(chunks))  # deterministic: the same audio


@pytest.mark.parametrize("fmt, rate, codec, target", [
    ("wav", 22050, "pcm_s16le", tts.WIDEBAND),
    ("telephone", 8000, "pcm_mulaw", tts.TELEPHONE),
    ("telephone-pcm", 8000, "pcm_s16le", tts.TELEPHONE),
])
def test_coqui_audio_is_exported_in_every_format(coqui, tmp_path, fmt, rate, codec, target):
    path, written = tts.export(tmp_path / f"{fmt}.wav", coqui.synthesize(REPLY), coqui.sample_rate, fmt)
    with av.open(str(path)) as f:
        s = f.streams.audio[0]
        assert (s.rate, s.codec_context.name, s.channels, written) == (rate, codec, 1, rate)
    samples = audio.decode(path, sample_rate=rate)
    # Random weights make a rumble (most of its energy under 100 Hz), which the K-weighted loudness barely
    # counts but the true-peak ceiling does: the limiter holds it a little under the target. Speech gets
    # within 0.5 dB (test_tts.py).
    assert abs(tts.loudness_lufs(samples, rate) - target.lufs) <= 1.5
    assert tts.true_peak_db(samples, rate) <= target.ceiling_dbtp + 0.3


def test_speak_command_with_a_coqui_checkpoint(tmp_path, coqui_vits):
    proc = run_cli("speak", REPLY, "--engine", "coqui", "--voice", str(coqui_vits), "--format", "telephone",
                   "--out", str(tmp_path / "reply.wav"))
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)  # Coqui's own prints stay off stdout: one JSON line
    assert (out["engine"], out["sample_rate"], out["sentences"], out["format"]) == ("coqui", 8000, 2, "telephone")
    assert 0 < out["timings"]["first_audio_s"] <= out["timings"]["synthesis_s"]
    with av.open(str(tmp_path / "reply.wav")) as f:
        s = f.streams.audio[0]
        assert (s.rate, s.codec_context.name, s.channels) == (8000, "pcm_mulaw", 1)


@pytest.mark.parametrize("args, message", [
    (["--voice", "tts_models/en/nobody/vits"], "unknown Coqui model 'tts_models/en/nobody/vits'"),
    (["--voice", "no-such-voice"], "Coqui model 'no-such-voice' not found: neither a checkpoint path nor"),
    (["--voice", "en_US-joe-medium"], "the coqui engine needs a Coqui model"),
    (["--voice", "{vits}:p225"], "has no speaker 'p225' (it has one voice)"),
    (["--voice", "{vits}", "--speaker-wav", "{tmp}/missing.wav"], "speaker reference recording not found:"),
    (["--voice", "{vits}", "--speaker-wav", "{tmp}/ref.wav"], "does not clone voices"),
    (["--voice", "{tmp}"], "no .pth file there"),
])
def test_coqui_errors_are_one_line(tmp_path, coqui_vits, args, message):
    (tmp_path / "ref.wav").write_bytes(b"RIFF")
    args = [a.format(vits=coqui_vits, tmp=tmp_path) for a in args]
    line = one_line_error(run_cli("speak", "Hello.", "--engine", "coqui", *args, "--out", str(tmp_path / "x.wav")))
    assert line.startswith("support-agent: error:") and message in line, line
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("missing, message", [
    # The small install (TORCH_BUILD=cpu) has no torchaudio.
    ("torchaudio", "the coqui engine needs torchaudio, which this install lacks"),
    ("TTS", "needs Coqui TTS, which is not installed: pip install 'support-agent[coqui]'"),
])
def test_a_missing_coqui_part_is_named_in_one_line(tmp_path, coqui_vits, missing, message):
    code = f"import sys; sys.modules[{missing!r}] = None; from channels.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "speak", "Hello.", "--engine", "coqui", "--voice",
                           str(coqui_vits), "--out", str(tmp_path / "x.wav")], capture_output=True,
                          env=cli_environment(), timeout=300)
    line = one_line_error(proc)
    assert message in line, line


def test_coqui_voice_names_and_checkpoints(tmp_path):
    assert coqui_tts.coqui_voice("tts_models/en/vctk/vits:p225") == ("tts_models/en/vctk/vits", "p225")
    assert coqui_tts.coqui_voice("tts_models/en/ljspeech/vits") == ("tts_models/en/ljspeech/vits", None)
    folder = tmp_path / "run:1"  # a path is taken whole, even with a colon in it
    folder.mkdir()
    assert coqui_tts.coqui_voice(str(folder)) == (str(folder), None)
    (folder / "checkpoint_100.pth").write_bytes(b"")
    (folder / "best_model.pth").write_bytes(b"")
    with pytest.raises(AgentError, match="no config.json beside it"):
        coqui_tts.coqui_checkpoint(folder)
    (folder / "config.json").write_text("{}")
    assert coqui_tts.coqui_checkpoint(folder) == (folder / "best_model.pth", folder / "config.json")
