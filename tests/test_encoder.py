"""Sentence encoders: the ONNX Runtime export serves exactly torch's embeddings, once exported."""
import logging

import numpy as np
import pytest

from agent import encoder as enc
from agent.types import AgentError

TEXTS = ["hi", "My card still has not arrived and it has been two weeks since I ordered it, can you help?",
         "how do I change my PIN", "", "Why was I charged twice for the same coffee?", "top up failed"]


@pytest.fixture(scope="module")
def shipped(agent):
    """The agent's encoder (ONNX, the shipped adapter) and the same model on torch."""
    return agent.classifier.encoder, enc.SentenceEncoder(agent.classifier.head.encoder,
                                                         adapter=agent.classifier.head.adapter)


def test_agent_serves_the_onnx_export(shipped):
    assert isinstance(shipped[0], enc.OnnxSentenceEncoder)


def test_onnx_embeddings_equal_torch_on_padded_batches(shipped):
    onnx_encoder, torch_encoder = shipped
    a, b = onnx_encoder.encode(TEXTS, batch_size=4), torch_encoder.encode(TEXTS, batch_size=4)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.abs(a - b).max() < 1e-4
    assert np.allclose((a ** 2).sum(axis=1), 1.0, atol=1e-5)


def test_batching_and_workers_do_not_change_results(shipped):
    onnx_encoder = shipped[0]
    alone = np.stack([onnx_encoder.encode([t])[0] for t in TEXTS])
    for batch_size in (1, 2, 64):
        assert np.abs(onnx_encoder.encode(TEXTS, batch_size=batch_size) - alone).max() < 1e-5
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_export_is_made_once_and_reused(tiny_bert, tmp_path, monkeypatch):
    first = enc.load_sentence_encoder(tiny_bert, cache_dir=tmp_path / "cache", workers=2)
    exports = list((tmp_path / "cache" / "encoders").glob("*.onnx"))
    assert isinstance(first, enc.OnnxSentenceEncoder) and len(exports) == 1

    def no_second_export(*_):
        raise AssertionError("exported again")

    monkeypatch.setattr(enc, "_export", no_second_export)
    again = enc.load_sentence_encoder(tiny_bert, cache_dir=tmp_path / "cache")
    texts = ["hello my card", "card", "my my my card hello"]
    assert np.abs(again.encode(texts) - enc.SentenceEncoder(tiny_bert).encode(texts)).max() < 1e-4


def test_an_encoder_that_will_not_export_falls_back_to_torch(tiny_bert, tmp_path, monkeypatch, caplog):
    import torch

    def broken_export(*_, **__):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    logger = logging.getLogger("support_agent.encoder")
    logger.addHandler(caplog.handler)  # the agent's loggers may not propagate (logs.configure)
    try:
        with caplog.at_level(logging.WARNING, logger="support_agent.encoder"):
            fallback = enc.load_sentence_encoder(tiny_bert, cache_dir=tmp_path / "cache")
    finally:
        logger.removeHandler(caplog.handler)
    assert isinstance(fallback, enc.SentenceEncoder)
    assert "onnx export failed" in caplog.text
    assert not list((tmp_path / "cache" / "encoders").glob("*"))  # nothing half-written is left


def test_unknown_runtime_is_one_clear_error(tiny_bert):
    with pytest.raises(AgentError, match="encoder runtime must be one of onnx, torch"):
        enc.load_sentence_encoder(tiny_bert, runtime="tensorflow")
