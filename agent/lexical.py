"""The lexical half of the intent model: word n-gram TF-IDF features and a logistic regression on them.

The fine-tuned encoder reads meaning; this reads the words themselves ("swallowed", "top up",
"direct debit"), which in support text often name the intent outright. Their errors differ, so the
intent head adds this model's log-probabilities to its own logits, with a weight fitted on
validation data (``finetune/intent.py``): the sparse-plus-dense combination that Rasa's DIET
classifier also uses. It costs about 0.1 ms a message and no second encoder pass.

Training uses scikit-learn's ``TfidfVectorizer``; serving recomputes the same features in a few
lines of numpy (the tests check they are equal), so loading needs no pickled scikit-learn object:
the artefact is one safetensors file, the vocabulary in its metadata, the weights as int8 with a
scale per intent (0.9 MB for Banking77's 9,586 terms, most of it the int8 weights).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .types import AgentError

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
NGRAMS = (1, 2)
MIN_DF = 2  # a term must occur in two training texts: single-use words and names are noise
C = 10.0  # inverse regularisation of the logistic regression


def terms(text: str) -> list[str]:
    """The text's word n-grams, exactly as scikit-learn's analyzer makes them (lowercased)."""
    tokens = TOKEN.findall(text.lower())
    return [" ".join(tokens[i:i + n]) for n in range(NGRAMS[0], NGRAMS[1] + 1) for i in range(len(tokens) - n + 1)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (each row's largest logit taken off first, so exp cannot overflow); the intent
    head and the hand-over detector turn their logits into probabilities with it."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def quantized(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with a scale per row: (int8 weights, scales). Costs no validation accuracy here."""
    scale = (np.maximum(np.abs(weight).max(axis=1), 1e-12) / 127).astype(np.float32)
    return np.round(weight / scale[:, None]).astype(np.int8), scale


def dequantized(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return weight.astype(np.float32) * scale[:, None]


@dataclass
class LexicalModel:
    vocabulary: dict[str, int]  # term -> column
    idf: np.ndarray  # (terms,)
    weight: np.ndarray  # (classes, terms), exactly what the int8 file holds
    bias: np.ndarray  # (classes,)

    @classmethod
    def fit(cls, texts: list[str], labels: np.ndarray) -> "LexicalModel":
        """Sublinear TF-IDF over word unigrams and bigrams, and a multinomial logistic regression;
        ``labels`` are class indices 0..k-1, every one present."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=NGRAMS, sublinear_tf=True, min_df=MIN_DF, token_pattern=TOKEN.pattern)
        try:
            features = vectorizer.fit_transform(texts)
        except ValueError:  # so few texts that no term is in two of them
            try:
                features = vectorizer.set_params(min_df=1).fit_transform(texts)
            except ValueError:
                raise AgentError("the training texts have no words to learn from") from None
        regression = LogisticRegression(C=C, max_iter=3000).fit(features, labels)
        coef, intercept = regression.coef_, regression.intercept_
        if coef.shape[0] == 1:  # two intents: scikit-learn keeps one row; softmax over [-z/2, z/2] is its sigmoid
            coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
        return cls({t: int(i) for t, i in vectorizer.vocabulary_.items()}, vectorizer.idf_.astype(np.float32),
                   dequantized(*quantized(coef)), intercept.astype(np.float32))

    def features(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text, (columns, values) of its l2-normalised sublinear TF-IDF vector."""
        out = []
        for text in texts:
            counts: dict[int, int] = {}
            for term in terms(text):
                column = self.vocabulary.get(term)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            values = (1 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf[columns]
            norm = float(np.linalg.norm(values))
            out.append((columns, values / norm if norm else values))
        return out

    def log_probabilities(self, texts: list[str]) -> np.ndarray:
        logits = np.stack([self.weight[:, c] @ v + self.bias for c, v in self.features(texts)])
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        weight, scale = quantized(self.weight)
        vocabulary = sorted(self.vocabulary, key=self.vocabulary.get)
        tensors = {"weight": weight, "scale": scale, "bias": self.bias, "idf": self.idf}
        # safetensors writes raw memory: scikit-learn's Fortran-ordered coef_ would be scrambled.
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path),
                  metadata={"vocabulary": json.dumps(vocabulary, ensure_ascii=False)})

    @classmethod
    def load(cls, path: Path) -> "LexicalModel":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}
            vocabulary = json.loads(f.metadata()["vocabulary"])
        return cls({term: i for i, term in enumerate(vocabulary)}, t["idf"], dequantized(t["weight"], t["scale"]),
                   t["bias"])
