"""Decoding every common format with PyAV, and clear errors for files that are not usable audio."""
import numpy as np
import pytest

from agent.types import AgentError
from channels import audio


@pytest.fixture(scope="module")
def speech(piper):
    return piper.synthesize("Testing one two three."), piper.sample_rate


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg", ".m4a"])
def test_formats_decode_to_16k_mono(tmp_path, speech, suffix):
    samples, rate = speech
    path = audio.encode(tmp_path / f"speech{suffix}", samples, rate)
    decoded = audio.decode(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) / audio.SAMPLE_RATE - len(samples) / rate) < 0.1  # codec padding only
    assert 0.05 < float(np.abs(decoded).max()) <= 1.05  # resampling may ring slightly past full scale


def test_telephone_mu_law_and_stereo(tmp_path, speech):
    import av

    samples, rate = speech
    narrow = audio.resample(samples, rate, 8000)
    path = audio.encode(tmp_path / "phone.wav", narrow, 8000, codec="pcm_mulaw")
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_mulaw" and c.streams.audio[0].rate == 8000
    assert abs(len(audio.decode(path)) / audio.SAMPLE_RATE - len(samples) / rate) < 0.1
    stereo = tmp_path / "stereo.wav"
    with av.open(str(stereo), "w") as out:
        s = out.add_stream("pcm_s16le", rate=16000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 3200), np.int16), format="s16", layout="stereo")
        frame.sample_rate = 16000
        for packet in s.encode(frame):
            out.mux(packet)
        out.mux(s.encode(None))
    assert len(audio.decode(stereo)) == 1600


def test_bad_files_give_one_clear_error(tmp_path, spoken_request):
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n" * 20)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(spoken_request.read_bytes()[:40])  # cut inside the header
    header_only = audio.write_wav(tmp_path / "header_only.wav", np.zeros(0, np.float32), 16000)
    garbage = tmp_path / "garbage.ogg"
    garbage.write_bytes(np.random.default_rng(1).bytes(5000))
    cases = {text: "not a readable audio file", empty: "empty file", truncated: "not a readable audio file",
             header_only: "no audio samples",
             garbage: "not a readable audio file", tmp_path / "missing.wav": "no such file"}
    for path, message in cases.items():
        with pytest.raises(AgentError, match=message) as err:
            audio.decode(path)
        assert "\n" not in str(err.value)
