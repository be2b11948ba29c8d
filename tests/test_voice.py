"""The call flow: on a two-party stereo call only the customer's words reach the agent; mono calls go whole."""
import numpy as np
import pytest

from channels import audio
from channels.voice import VoiceChannel
from conftest import CARD_REQUEST, wer
from test_asr import silence, write_stereo

AGENT_SAYS = "Thank you for calling Kestrel Bank. I can help you close your account today."


@pytest.fixture(scope="module")
def call(piper, tmp_path_factory):
    """Customer on the left asks about a card; the agent on the right talks about closing an account."""
    def say(text):
        return audio.resample(piper.synthesize(text), piper.sample_rate, audio.SAMPLE_RATE)

    agent_part, customer_part = say(AGENT_SAYS), say(CARD_REQUEST)
    right = np.concatenate([silence(0.3), agent_part])
    left = np.concatenate([silence(right.size / audio.SAMPLE_RATE + 0.7), customer_part])
    return write_stereo(tmp_path_factory.mktemp("call") / "call.wav", left, right)


@pytest.fixture(scope="module")
def voice(agent):
    return VoiceChannel(agent).warm_up()


def test_stereo_call_answers_the_customer_only(voice, call, tmp_path):
    result = voice.answer(call, tmp_path / "reply.wav")
    summary = result.summary()
    assert [t["speaker"] for t in summary["turns"]] == ["agent", "customer"]
    assert summary["turns"][0]["end"] <= summary["turns"][1]["start"]
    assert wer(CARD_REQUEST, summary["customer_text"]) <= 0.15 and "account" not in summary["customer_text"]
    assert "account" in summary["transcript"]  # the whole call is still transcribed
    assert summary["intent"] == "card_arrival" and set(summary["timings"]) == {
        "decode", "transcribe", "understand_and_draft", "speak"}


def test_the_customer_side_comes_from_the_speakers_setting(voice, call, tmp_path):
    from agent.pipeline import Agent

    swapped = VoiceChannel(Agent(voice.agent.settings.replace(asr_speakers="agent,customer")))
    # The models already loaded, rather than a second copy of each.
    swapped.agent.__dict__.update(classifier=voice.agent.classifier, knowledge=voice.agent.knowledge)
    swapped.__dict__.update(recogniser=voice.recogniser, speaker=voice.speaker)
    result = swapped.answer(call, tmp_path / "reply.wav")
    assert [t["speaker"] for t in result.summary()["turns"]] == ["customer", "agent"]
    assert wer(AGENT_SAYS, result.customer_text) <= 0.15


def test_mono_call_goes_whole_to_the_agent(voice, spoken_request, tmp_path):
    result = voice.answer(spoken_request, tmp_path / "reply.wav")
    assert result.customer_text == result.transcript.text and result.summary()["turns"][0]["speaker"] is None


def test_mono_two_party_call_answers_the_customer_only(voice, piper, tmp_path):
    """Both parties on one channel, in two voices: the agent's words are told apart and not answered."""
    from bench import calls

    call = calls.build("mono", [("agent", AGENT_SAYS), ("customer", CARD_REQUEST)],
                       {"agent": calls.espeak, "customer": calls.piper_voice(piper)}, pauses=[0.0, 0.6])
    recording = audio.write_wav(tmp_path / "mono.wav", call.mono, audio.SAMPLE_RATE)
    summary = voice.answer(recording, tmp_path / "reply.wav").summary()
    assert [t["speaker"] for t in summary["turns"]] == ["agent", "customer"]
    assert wer(CARD_REQUEST, summary["customer_text"]) <= 0.15 and "account" not in summary["customer_text"]
    assert summary["intent"] == "card_arrival"
    assert all(s["words"] and {"start", "end", "word", "probability"} <= set(s["words"][0])
               for s in summary["segments"])  # word timings are on in the call flow
