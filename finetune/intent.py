"""Train the intent classifier: a calibrated linear head on mean-pooled sentence embeddings.

    python -m finetune.intent --train data/banking77/train.csv --out agent/data/intent

Steps: a stratified validation split (fixed seed); embeddings from the encoder; a multinomial
logistic-regression head with its regularisation chosen on validation; temperature scaling
fitted on validation so probabilities are calibrated; the escalation threshold chosen on
validation as the lowest confidence at which accepted answers are at least ``--target-precision``
correct. It writes the artefact plus metrics.json, report.txt and confusion.png beside it.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from agent.encoder import SentenceEncoder
from agent.intent import IntentHead
from agent.types import AgentError
from finetune.data import read_examples

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO / "data" / "banking77" / "train.csv"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.intent", description=__doc__.splitlines()[0])
    p.add_argument("--train", default=str(DEFAULT_TRAIN), help="CSV or JSONL with text and intent/category")
    p.add_argument("--out", required=True, help="directory for the model artefact")
    p.add_argument("--base", default="all-MiniLM-L6-v2", help="encoder: packaged name, HF id or path")
    p.add_argument("--eval", help="optional labelled file for a final held-out evaluation")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--target-precision", type=float, default=0.97,
                   help="accuracy that answered (not escalated) validation messages must reach")
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args(argv)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(axis=1))).mean())
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 400))
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Lowest confidence cut-off at which the answered messages are at least ``target`` correct."""
    order = np.argsort(-confidence)
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= target)[0]
    if not len(ok):
        return 1.0
    return float(confidence[order][ok[-1]])


def evaluate(head: IntentHead, embeddings: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    probs = head.probabilities(embeddings)
    predicted = [head.labels[i] for i in probs.argmax(axis=1)]
    confidence = probs.max(axis=1)
    answered = confidence >= head.threshold
    correct = np.array([p == t for p, t in zip(predicted, labels)])
    p, r, f, n = precision_recall_fscore_support(labels, predicted, labels=head.labels, zero_division=0)
    return {
        "examples": len(labels),
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=head.labels, average="macro", zero_division=0)), 4),
        "answered_fraction": round(float(answered.mean()), 4),
        "answered_accuracy": round(float(correct[answered].mean()) if answered.any() else 0.0, 4),
        "per_intent": {lab: {"precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(c), 4),
                             "support": int(d)} for lab, a, b, c, d in zip(head.labels, p, r, f, n)},
        "_predicted": predicted,
    }


def write_reports(out: Path, labels: list[str], truth: list[str], predicted: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import classification_report, confusion_matrix

    (out / "report.txt").write_text(
        classification_report(truth, predicted, labels=labels, zero_division=0, digits=3), encoding="utf-8")
    matrix = confusion_matrix(truth, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(14, 14))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
    ax.set_yticks(range(len(labels)), labels, fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Intent confusion matrix (validation)")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)


def train(args: argparse.Namespace) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    random.seed(args.seed)
    np.random.seed(args.seed)
    started = time.time()
    examples = read_examples(args.train)
    texts, labels = [e.text for e in examples], [e.intent for e in examples]
    label_set = sorted(set(labels))
    if len(label_set) < 2:
        raise AgentError(f"{args.train} needs at least two intents, found {len(label_set)}")
    try:
        tr_x, va_x, tr_y, va_y = train_test_split(texts, labels, test_size=args.validation_fraction,
                                                  stratify=labels, random_state=args.seed)
    except ValueError as exc:
        raise AgentError(f"cannot make a stratified validation split: {exc}") from None
    encoder = SentenceEncoder(args.base)
    tr_e = encoder.encode(tr_x, progress=True)
    va_e = encoder.encode(va_x, progress=True)
    index = {lab: i for i, lab in enumerate(label_set)}
    tr_i, va_i = np.array([index[y] for y in tr_y]), np.array([index[y] for y in va_y])

    best = None
    for c in (4.0, 16.0, 64.0, 256.0):
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(tr_e, tr_i)
        acc = float((model.predict(va_e) == va_i).mean())
        print(f"C={c:g}: validation accuracy {acc:.4f}", file=sys.stderr)
        if best is None or acc > best[0]:
            best = (acc, c, model)
    _, c, model = best
    # The classes LogisticRegression saw are all of label_set (stratified split keeps each in train).
    weight, bias = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    temperature = fit_temperature(va_e @ weight.T + bias, va_i)
    head = IntentHead(labels=label_set, weight=weight, bias=bias, temperature=temperature, threshold=0.0,
                      encoder=args.base, metrics={})
    probs = head.probabilities(va_e)
    head.threshold = round(choose_threshold(probs.max(axis=1), probs.argmax(axis=1) == va_i,
                                            args.target_precision), 4)
    validation = evaluate(head, va_e, va_y)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(out, label_set, va_y, validation.pop("_predicted"))
    metrics = {"method": "linear head on frozen mean-pooled embeddings (logistic regression)",
               "base": args.base, "train_file": Path(args.train).name, "train_examples": len(tr_x),
               "C": c, "temperature": round(temperature, 4), "threshold": head.threshold,
               "target_precision": args.target_precision, "seed": args.seed,
               "validation": validation, "train_seconds": round(time.time() - started, 1)}
    if args.eval:
        held = read_examples(args.eval)
        result = evaluate(head, encoder.encode([e.text for e in held], progress=True), [e.intent for e in held])
        result.pop("_predicted")
        metrics["eval"] = result
    head.metrics = {k: v for k, v in metrics.items() if k not in ("validation", "eval")}
    head.metrics["validation_accuracy"] = validation["accuracy"]
    head.metrics["validation_macro_f1"] = validation["macro_f1"]
    head.save(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        metrics = train(args)
    except AgentError as exc:
        print(f"finetune.intent: error: {exc}", file=sys.stderr)
        return 2
    v = metrics["validation"]
    print(json.dumps({"out": args.out, "accuracy": v["accuracy"], "macro_f1": v["macro_f1"],
                      "threshold": metrics["threshold"], "answered_fraction": v["answered_fraction"],
                      "answered_accuracy": v["answered_accuracy"], "seconds": metrics["train_seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
