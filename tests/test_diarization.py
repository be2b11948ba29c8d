"""Two-party calls in two real voices (Piper and espeak-ng, bench/calls.py) with known turn times: segment
times bound the speech in both engines, stereo turns interleave in true order, mono calls are diarized
(packaged GE2E encoder), the agent is found, numbers come back as said, and the CLI's flags."""
import json

import numpy as np
import pytest
from agent.entities import extract
from agent.types import AgentError
from bench import calls
from channels import asr, audio, diarization
from conftest import one_line_error, run_cli, wer


@pytest.fixture(scope="session")
def two_party(piper):
    """The agent greets first in one call; the customer speaks first in the other."""
    return {c.name: c for c in calls.test_calls(piper, ("card", "charged_twice"))}


@pytest.fixture(scope="session")
def heard(recogniser, two_party):
    """Each call through the default recogniser (Whisper base), as stereo and as the same call mixed to mono."""
    return {(name, kind): recogniser.transcribe(call.stereo if kind == "stereo" else call.mono)
            for name, call in two_party.items() for kind in ("stereo", "mono")}


@pytest.mark.parametrize("name", ["card", "charged_twice"])
@pytest.mark.parametrize("kind", ["stereo", "mono"])
def test_turns_come_in_true_order_at_the_right_times(two_party, heard, name, kind):
    call, transcript = two_party[name], heard[name, kind]
    turns = transcript.turns()
    assert [t["speaker"] for t in turns] == [t.speaker for t in call.turns], turns
    assert all(abs(got["start"] - want.start) <= 0.5 for got, want in zip(turns, call.turns)), turns
    for got, want in zip(turns, call.turns):
        assert wer(want.text, got["text"]) <= 0.25, (want.text, got["text"])
    assert all(0 <= s.start < s.end <= transcript.duration_s for s in transcript.segments)
    assert calls.der(call, transcript.segments) <= 0.05


@pytest.mark.parametrize("name", ["card", "charged_twice"])
def test_references_and_amounts_come_back_as_said(two_party, heard, name):
    call = two_party[name]
    for kind in ("stereo", "mono"):
        text = heard[name, kind].text
        assert all(r in text.split() or f"{r}." in text.split() or f"{r}," in text.split() for r in call.references)
        amounts = [e.value for e in extract(text) if e.kind == "amount"]
        assert all(a in amounts for a in call.amounts), (text, amounts)


def test_words_carry_times_and_probabilities(heard):
    for segment in heard["card", "mono"].segments:
        assert segment.words and segment.words[0].start >= segment.start - 0.01
        assert segment.words[-1].end <= segment.end + 0.01
        assert all(w.start <= w.end and 0 < w.probability <= 1 for w in segment.words)
        assert [w.start for w in segment.words] == sorted(w.start for w in segment.words)


def test_the_first_speaker_rule(recogniser, two_party, heard):
    """The customer opens 'charged_twice'; the agent greets with the bank's name, so is found anyway.
    With diarization_agent = "first" the one who speaks first is taken for the agent."""
    call, transcript = two_party["charged_twice"], heard["charged_twice", "mono"]
    assert transcript.segments[0].speaker == "customer"
    first = diarization.label(call.mono, transcript.segments, recogniser.diarizer,
                              diarization.Options(speakers=2, agent="first"), asr.DEFAULT_SPEAKERS)
    assert [s.speaker for s in first][:2] == ["agent", "customer"]


def test_one_voice_is_not_split(recogniser, piper):
    """A mono recording of one person (clean, and over a noisy telephone line) keeps no speaker labels."""
    from test_asr import noisy_phone

    say = calls.piper_voice(piper)
    speech = np.concatenate([np.concatenate([say(t), np.zeros(8000, np.float32)]) for t in (
        "I ordered a new card two weeks ago and it still has not arrived.",
        "The app says it was posted on Monday, but nothing came.",
        "Could you send another one to my new address please?")])
    for recording in (speech, noisy_phone(speech, 20)):
        assert {s.speaker for s in recogniser.transcribe(recording).segments} == {None}


def test_one_speaker_turns_diarization_off(recogniser, two_party, monkeypatch):
    monkeypatch.setattr(recogniser, "diarization", diarization.Options(speakers=1))
    assert {s.speaker for s in recogniser.transcribe(two_party["card"].mono).segments} == {None}


def test_segments_bound_the_speech_in_both_engines(settings, piper):
    """The issue's call: left speaks 0.0-2.3 s and 7.3-11.0 s, right 2.8-6.8 s and 11.8-14.8 s (turns here
    as long as the voices take to say them). Segments once ran on over the silence (left 0.0-7.42), so the
    turns read out of order."""
    voices = {"customer": calls.piper_voice(piper), "agent": calls.espeak}
    call = calls.build("issue", [("customer", "My card was declined at the shop."),
                                 ("agent", "I am sorry to hear that. Let me check your account now."),
                                 ("customer", "Thanks, it was the card ending 4217."),
                                 ("agent", "I can see the payment. It was blocked as a precaution.")],
                       voices, pauses=[0.0, 0.5, 0.5, 0.8], lead_s=0.0)
    for engine in (asr.FasterWhisperEngine, asr.OpenAIWhisperEngine):
        result = engine(settings).transcribe(call.stereo)  # Whisper base: tiny.en loses the last words
        turns = result.turns()
        assert [t["speaker"] for t in turns] == [t.speaker for t in call.turns], (engine.name, turns)
        for got, want in zip(turns, call.turns):
            assert abs(got["start"] - want.start) <= 0.5 and abs(got["end"] - want.end) <= 0.5, (engine.name, turns)
        assert all(s.words and s.end <= result.duration_s for s in result.segments)


def test_an_unknown_or_unusable_engine_is_one_line(settings):
    with pytest.raises(AgentError, match=r"unknown diarization engine 'nope' \(available: resemblyzer, pyannote\)"):
        diarization.Options.from_settings(settings.replace(diarization_engine="nope"))
    with pytest.raises(AgentError, match="pyannote"):  # not installed here, or no model-hub access
        diarization.load_engine(settings.replace(diarization_engine="pyannote"))
    with pytest.raises(AgentError, match="at least 1 speaker"):
        diarization.Options.from_settings(settings.replace(diarization_speakers=0))


def test_cli_words_and_speakers(two_party, tmp_path, cache_dir):
    call = two_party["card"]
    mono = audio.write_wav(tmp_path / "mono.wav", call.mono, audio.SAMPLE_RATE)
    stereo = calls.write_stereo(tmp_path / "stereo.wav", call.stereo)
    env = {"SUPPORT_AGENT_CACHE_DIR": str(cache_dir)}
    proc = run_cli("transcribe", str(mono), str(stereo), "--word-timestamps", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    for line in map(json.loads, proc.stdout.splitlines()):
        assert [s["speaker"] for s in line["segments"]] == [t.speaker for t in call.turns], line
        words = line["segments"][-1]["words"]
        assert set(words[0]) == {"start", "end", "word", "probability"} and "48213" in words[-1]["word"]
    proc = run_cli("transcribe", str(mono), "--speakers", "1", env=env)
    line = json.loads(proc.stdout)
    assert {s["speaker"] for s in line["segments"]} == {None} and "words" not in line["segments"][0]
    assert "at least 1 speaker" in one_line_error(run_cli("transcribe", str(mono), "--speakers", "0", env=env))


def test_the_encoder_sees_the_mel_spectrogram_it_was_trained_on():
    """The numpy mel spectrogram is librosa's (which Resemblyzer's training used), to float precision."""
    import librosa

    from channels import diarize_resemblyzer

    x = np.random.default_rng(0).standard_normal(3 * audio.SAMPLE_RATE).astype(np.float32) * 0.1
    expected = librosa.feature.melspectrogram(y=x, sr=audio.SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40).T
    np.testing.assert_allclose(diarize_resemblyzer._mel(x), expected, rtol=1e-4, atol=1e-6)
