"""Turn a CTranslate2 Whisper model (``model.bin``) into a checkpoint that ``whisper.load_model`` accepts.

The packaged Whisper weights ship only in CTranslate2's format (what faster-whisper runs). openai-whisper
wants ``{"dims": ..., "model_state_dict": ...}`` saved with ``torch.save``. This module reads
``model.bin`` itself (no ctranslate2 needed) and renames, splits and checks the tensors.

``model.bin`` (little-endian; see ``ctranslate2/specs/model_spec.py`` and ``src/models/model.cc``)::

    uint32 binary_version                      # 6 today; versions 2-6 are read here
    string spec_name, uint32 spec_revision     # "WhisperSpec"; absent before version 2
    uint32 n_variables, then per variable:
        string name, uint8 rank, uint32 dims[rank]
        uint8 dtype_id, uint32 n_bytes         # version >= 4; before: uint8 item_size, uint32 n_items
        bytes data                             # row-major
    uint32 n_aliases, then (string alias, string target) each   # version >= 3
    string = uint16 length (including a trailing NUL), then the bytes and the NUL
    dtype_id: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16

Quantised weights (int8 / int16) carry a ``<name>_scale``: ``float = int / scale`` (int8: one scale per
output row; int16: one scale per tensor, 1000 when none was saved).

How CTranslate2 lays out Whisper, against openai-whisper's names:

* self-attention ``linear_0`` is query, key and value fused along the output axis (3*d rows), ``linear_1``
  the output projection;
* cross-attention ``linear_0`` is the query, ``linear_1`` key and value fused (2*d rows), ``linear_2`` the
  output;
* the fused bias carries a key bias (zeros, added by the converter because openai-whisper's key has
  none). It is dropped: a bias on the keys adds the same amount ``q . b_k`` to every score of one query,
  which softmax cancels, so dropping it is exact even if it were not zero;
* layer norms are ``gamma``/``beta``; the output projection is tied to the token embedding (an alias).

The mel filters are not part of the model: openai-whisper keeps them in its own assets (80 or 128 bins,
chosen from ``n_mels``, which is read from the first convolution).
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np

from .types import AgentError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
_OLD_ITEM_SIZES = {4: np.float32, 2: np.int16, 1: np.int8}  # binary versions < 4
_INT16_DEFAULT_SCALE = 1000.0  # CTranslate2's global int16 scale, for old int16 models without one
SUPPORTED_BINARY_VERSIONS = range(2, 7)


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise AgentError(f"{self.path}: truncated CTranslate2 model (needed {n} bytes at offset {self.pos}, "
                             f"file has {len(self.data)})")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def read_model_bin(path: str | os.PathLike) -> tuple[str, int, dict[str, np.ndarray]]:
    """``(spec name, spec revision, {name: array})`` from a CTranslate2 ``model.bin``.

    Quantised weights are returned as float32 (their scales applied and removed); bfloat16 as float32;
    aliases become entries that share the target's array.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    r = _Reader(data, path)
    version = r.unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise AgentError(f"{path}: not a CTranslate2 model this converter reads (binary version {version}; "
                         f"supported: {SUPPORTED_BINARY_VERSIONS.start}-{SUPPORTED_BINARY_VERSIONS.stop - 1})")
    spec, revision = r.string(), r.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        shape = _dims(r)
        if version >= 4:
            type_id, n_bytes = r.unpack("B"), r.unpack("I")
            if type_id not in _DTYPES:
                raise AgentError(f"{path}: variable {name} has an unknown data type id {type_id}")
            dtype = _DTYPES[type_id]
        else:
            item_size, n_items = r.unpack("B"), r.unpack("I")
            if item_size not in _OLD_ITEM_SIZES:
                raise AgentError(f"{path}: variable {name} has an unknown item size {item_size}")
            dtype, n_bytes = _OLD_ITEM_SIZES[item_size], n_items * item_size
        raw = r.take(n_bytes)
        if dtype == "bfloat16":  # the upper half of a float32
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise AgentError(f"{path}: variable {name} holds {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    if version >= 3:
        for _ in range(r.unpack("I")):
            alias, target = r.string(), r.string()
            if target in variables:
                variables[alias] = variables[target]
                if target + "_scale" in variables:
                    variables[alias + "_scale"] = variables[target + "_scale"]
    return spec, revision, _dequantize(variables)


def _dims(r: _Reader) -> tuple[int, ...]:
    rank = r.unpack("B")
    if rank == 0:
        return ()
    dims = r.unpack(f"{rank}I")
    return (dims,) if rank == 1 else tuple(dims)


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, array in variables.items():
        if name.endswith("_scale") and name[:-len("_scale")] in variables:
            continue
        if array.dtype in (np.int8, np.int16) and array.ndim >= 2:
            scale = variables.get(name + "_scale")
            if scale is None:
                if array.dtype == np.int8:
                    raise AgentError(f"int8 weight {name} has no {name}_scale")
                scale = np.float32(_INT16_DEFAULT_SCALE)
            scale = np.asarray(scale, dtype=np.float32)
            if scale.ndim == 1:  # one scale per output row (conv weights: rows are output channels)
                scale = scale.reshape((-1,) + (1,) * (array.ndim - 1))
            array = array.astype(np.float32) / scale
        out[name] = array
    return out


def _scalar(variables: dict, name: str) -> int:
    try:
        return int(np.asarray(variables[name]).reshape(-1)[0])
    except KeyError:
        raise AgentError(f"not a Whisper model: it has no variable {name}") from None


def _layers(variables: dict, prefix: str) -> int:
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise AgentError(f"not a Whisper model: {prefix} layers are not numbered 0..n-1")
    return len(found)


def to_openai(variables: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """openai-whisper's ``(dims, state_dict)`` (numpy arrays) from CTranslate2 Whisper variables."""
    v = variables
    dims = _model_dimensions(v)
    _check_projection(v)
    sd = _StateDict(v)
    sd.linear("encoder.conv1", "encoder/conv1")
    sd.linear("encoder.conv2", "encoder/conv2")
    if "encoder/position_encodings/encodings" in v:
        sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    else:  # older conversions leave the encoder's fixed sinusoids out
        from whisper.model import sinusoids

        sd["encoder.positional_embedding"] = sinusoids(dims["n_audio_ctx"], dims["n_audio_state"]).numpy()
    for i in range(dims["n_audio_layer"]):
        sd.block(f"encoder.blocks.{i}", f"encoder/layer_{i}", dims["n_audio_state"], cross=False)
    sd.norm("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = sd.variable("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = sd.variable("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        sd.block(f"decoder.blocks.{i}", f"decoder/layer_{i}", dims["n_text_state"], cross=True)
    sd.norm("decoder.ln", "decoder/layer_norm")
    return dims, dict(sd)


def _model_dimensions(v: dict) -> dict:
    """openai-whisper's ``ModelDimensions`` fields, read from the variables' shapes."""
    get = _getter(v)
    conv1 = get("encoder/conv1/weight")
    embedding = get("decoder/embeddings/weight")
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0])
        if "encoder/position_encodings/encodings" in v else 1500,
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": _scalar(v, "encoder/num_heads"),
        "n_audio_layer": _layers(v, "encoder"),
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(get("decoder/position_encodings/encodings").shape[0]),
        "n_text_state": int(embedding.shape[1]),
        "n_text_head": _scalar(v, "decoder/num_heads"),
        "n_text_layer": _layers(v, "decoder"),
    }


def _check_projection(v: dict) -> None:
    """openai-whisper ties the output projection to the token embedding, without a bias."""
    embedding, projection = v.get("decoder/embeddings/weight"), v.get("decoder/projection/weight")
    if projection is not None and projection is not embedding and not np.array_equal(projection, embedding):
        raise AgentError("this Whisper model's output projection is not tied to its token embedding; "
                         "openai-whisper cannot represent it")
    if "decoder/projection/bias" in v and np.any(v["decoder/projection/bias"]):
        raise AgentError("this Whisper model's output projection has a bias; openai-whisper cannot represent it")


class _StateDict(dict):
    """openai-whisper's state dict, filled layer by layer from CTranslate2 variables."""

    def __init__(self, variables: dict):
        super().__init__()
        self.v = variables
        self.variable = _getter(variables)

    def linear(self, dst: str, src: str, rows: slice | None = None, bias: bool = True) -> None:
        weight, b = self.variable(src + "/weight"), self.v.get(src + "/bias")
        self[dst + ".weight"] = weight if rows is None else weight[rows]
        if bias:
            self[dst + ".bias"] = (np.zeros(self[dst + ".weight"].shape[0], weight.dtype) if b is None
                                   else (b if rows is None else b[rows]))

    def norm(self, dst: str, src: str) -> None:
        self[dst + ".weight"], self[dst + ".bias"] = self.variable(src + "/gamma"), self.variable(src + "/beta")

    def attention(self, dst: str, src: str, d: int, cross: bool) -> None:
        if cross:  # linear_0 query, linear_1 key+value, linear_2 out
            self.linear(f"{dst}.query", f"{src}/linear_0")
            kv = f"{src}/linear_1"
            _rows(self.variable(kv + "/weight"), 2 * d, kv)
            self.linear(f"{dst}.key", kv, slice(0, d), bias=False)
            self.linear(f"{dst}.value", kv, slice(d, 2 * d))
            self.linear(f"{dst}.out", f"{src}/linear_2")
        else:  # linear_0 query+key+value, linear_1 out
            qkv = f"{src}/linear_0"
            _rows(self.variable(qkv + "/weight"), 3 * d, qkv)
            self.linear(f"{dst}.query", qkv, slice(0, d))
            self.linear(f"{dst}.key", qkv, slice(d, 2 * d), bias=False)  # the key bias is dropped (see above)
            self.linear(f"{dst}.value", qkv, slice(2 * d, 3 * d))
            self.linear(f"{dst}.out", f"{src}/linear_1")
        self.norm(f"{dst}_ln", f"{src}/layer_norm")

    def block(self, dst: str, src: str, d: int, cross: bool) -> None:
        self.attention(f"{dst}.attn", f"{src}/self_attention", d, cross=False)
        if cross:
            self.attention(f"{dst}.cross_attn", f"{src}/attention", d, cross=True)
        self.linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        self.linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        self.norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")


def _getter(v: dict):
    def get(name: str) -> np.ndarray:
        try:
            return v[name]
        except KeyError:
            raise AgentError(f"not a Whisper model: it has no variable {name}") from None
    return get


def _rows(weight: np.ndarray, expected: int, name: str) -> None:
    if weight.shape[0] != expected:
        raise AgentError(f"{name}: expected {expected} fused rows, found {weight.shape[0]}")


def alignment_heads(model_dir: Path) -> list[list[int]] | None:
    """The cross-attention heads that follow the timing (CTranslate2's config.json), for word timestamps."""
    try:
        heads = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("alignment_heads")
    except (OSError, ValueError):
        return None
    return [[int(layer), int(head)] for layer, head in heads] if heads else None


def convert(model_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (atomically): an openai-whisper checkpoint made from the CTranslate2 model in ``model_dir``.

    Floating-point weights keep their stored precision (float16 stays float16, as in OpenAI's own
    checkpoints; ``whisper.load_model`` casts on load); dequantised weights are float32. The checkpoint
    also carries ``alignment_heads`` (from config.json) for word timestamps; ``whisper.load_model`` ignores it.
    """
    import torch

    model_dir, out = Path(model_dir), Path(out)
    spec, _revision, variables = read_model_bin(model_dir / "model.bin")
    if spec and spec != "WhisperSpec":
        raise AgentError(f"{model_dir} holds a CTranslate2 {spec}, not a Whisper model")
    dims, state = to_openai(variables)
    checkpoint = {"dims": dims,
                  "model_state_dict": {k: torch.from_numpy(a.copy()) for k, a in state.items()},
                  "alignment_heads": alignment_heads(model_dir),
                  "source": {"format": "ctranslate2", "path": str(model_dir)}}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    try:
        torch.save(checkpoint, partial)
        os.replace(partial, out)  # atomic: a concurrent or killed conversion never leaves a half-written file
    finally:
        partial.unlink(missing_ok=True)
    return out


def set_alignment_heads(model, heads: list[list[int]] | None) -> None:
    """Give a loaded ``whisper.model.Whisper`` the alignment heads saved by ``convert``."""
    if not heads:
        return
    import torch

    mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
    for layer, head in heads:
        if layer < mask.shape[0] and head < mask.shape[1]:
            mask[layer, head] = True
    model.register_buffer("alignment_heads", mask.to_sparse().to(model.device), persistent=False)


if __name__ == "__main__":  # python -m agent.whisper_weights CT2_DIR OUT.pt
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m agent.whisper_weights CTRANSLATE2_WHISPER_DIR OUT.pt")
    print(convert(sys.argv[1], sys.argv[2]))
