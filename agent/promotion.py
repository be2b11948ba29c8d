"""Promotion: a trained version replaces the promoted one only if it is not worse on a fixed held-out set.

Each kind of model has a ``Judge``: the metrics compared (higher is better), the repository's fixed
held-out file, the artefact in use before any promotion, and how to measure one model on one
labelled file. Both the promoted model and the candidate are evaluated now, on the same file, so the
comparison never rests on numbers measured on different data. The storage side (copying versions
in, the pointer, rollback) is ``agent.model_versions``. This module reads trained models only, so
the command line can promote without importing training code (``finetune``).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import model_versions
from .labelled import read_examples, rows
from .types import AgentError

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 0.005  # half a point: below the noise of a 1,000-example held-out set
HELDOUT_RECORDS = 40  # replies compared on: generation is the slow part, about a second a reply on a CPU


def intent_heldout_metrics(model_dir: str | Path, heldout: str | Path) -> dict:
    """Accuracy and macro-F1 (over the intents the held-out set has) of one intent model."""
    from sklearn.metrics import f1_score

    from .intent import IntentClassifier

    examples = read_examples(heldout)
    truth = [e.intent for e in examples]
    predicted = [p.top[0].intent for p in IntentClassifier(str(model_dir)).classify([e.text for e in examples])]
    correct = np.array([p == t for p, t in zip(predicted, truth)])
    return {"examples": len(truth), "accuracy": round(float(correct.mean()), 4),
            "macro_f1": round(float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro",
                                             zero_division=0)), 4)}


def read_records(path: str | Path) -> list[dict]:
    """Reply records (JSONL, or CSV) with ``text``, ``passage`` and ``reply``; the first bad row is an error."""
    records = []
    for number, row in rows(path):
        if isinstance(row, AgentError):
            raise row
        if not all(isinstance(row.get(k), str) and row[k].strip() for k in ("text", "passage", "reply")):
            raise AgentError(f"{path}:{number}: each record needs 'text', 'passage' and 'reply'")
        records.append(row)
    if not records:
        raise AgentError(f"{path} holds no records")
    return records


def score_replies(generator, records: list[dict]) -> dict:
    """ROUGE-L and chrF against the reference replies, invented numbers and latency of ``generator``'s
    drafts (an ``agent.generator.Generator``), over ``records``."""
    import sacrebleu
    from rouge_score import rouge_scorer
    from tqdm import tqdm

    from .guards import unsupported_numbers

    rouge = rouge_scorer.RougeScorer(["rougeL"])
    scored, latencies = [], []
    for r in tqdm(records, desc="scoring", unit="reply"):
        start = time.perf_counter()
        draft = generator.draft(r["text"], r["passage"], r.get("channel", "email"))
        latencies.append(time.perf_counter() - start)
        scored.append({"rougeL": rouge.score(r["reply"], draft)["rougeL"].fmeasure,
                       "chrf": sacrebleu.sentence_chrf(draft, [r["reply"]]).score,
                       "invented": bool(unsupported_numbers(draft, [r["text"], r["passage"]])),
                       "exact": draft.strip() == r["reply"].strip()})
    return {"records": len(scored),
            "rougeL": round(float(np.mean([x["rougeL"] for x in scored])), 4),
            "chrf": round(float(np.mean([x["chrf"] for x in scored])), 2),
            "invented_number_rate": round(float(np.mean([x["invented"] for x in scored])), 4),
            "exact_match": round(float(np.mean([x["exact"] for x in scored])), 4),
            "latency_median_s": round(float(np.median(latencies)), 3)}


def generator_heldout_metrics(model_dir: str | Path, heldout: str | Path) -> dict:
    """ROUGE-L, chrF (as a fraction) and the share of drafts with no invented number, of one generator."""
    from .generator import Generator
    from .settings import Settings

    result = score_replies(Generator(str(model_dir), Settings.load().cache_dir), read_records(heldout)[:HELDOUT_RECORDS])
    return {"rougeL": result["rougeL"], "chrf": round(result["chrf"] / 100, 4),
            "number_faithfulness": round(1 - result["invented_number_rate"], 4)}


@dataclass(frozen=True)
class Judge:
    """How versions of one kind are compared."""

    metrics: tuple[str, ...]  # the keys compared; higher is better
    heldout: Path  # the repository's fixed held-out file, which no shipped version trained on
    shipped: Path  # the artefact in use before any promotion
    evaluate: Callable[[str | Path, str | Path], dict]  # (model directory, labelled file) -> metrics


def _judges() -> dict[str, Judge]:
    from .generator import DEFAULT_DIR as GENERATOR_DIR
    from .intent import DEFAULT_DIR as INTENT_DIR

    return {"intent": Judge(("accuracy", "macro_f1"), REPO / "data" / "heldout" / "intent.jsonl", INTENT_DIR,
                            intent_heldout_metrics),
            "generator": Judge(("rougeL", "chrf", "number_faithfulness"), REPO / "data" / "replies" / "validation.jsonl",
                               GENERATOR_DIR, generator_heldout_metrics)}


def judge(kind: str) -> Judge:
    """How ``kind`` versions are compared."""
    judges = _judges()
    if kind not in judges:
        raise AgentError(f"unknown model kind '{kind}' (known: {', '.join(judges)})")
    return judges[kind]


@dataclass
class Comparison:
    kind: str
    candidate: str  # version id
    current: str  # version id, or "shipped"
    heldout: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> current, candidate, change
    worse: list[str] = field(default_factory=list)  # metrics that dropped by more than the tolerance
    tolerance: float = TOLERANCE

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The side-by-side comparison, for people."""
        rows = [f"{'metric':<12} {self.current[:24]:>24} {self.candidate[:24]:>24} {'change':>8}"]
        for name, m in self.metrics.items():
            flag = "  WORSE" if name in self.worse else ""
            rows.append(f"{name:<12} {m['current']:>24.4f} {m['candidate']:>24.4f} {m['change']:>+8.4f}{flag}")
        return "\n".join([f"{self.kind} on {self.heldout}", *rows])


def compare(models_dir: str | Path, candidate: str | Path, heldout: str | Path | None = None,
            tolerance: float | None = None) -> Comparison:
    """The candidate and the promoted version (or the shipped one), both measured now on ``heldout``
    (default: the kind's fixed held-out file)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    info = model_versions.read_version(candidate)
    kind = judge(info["kind"])
    heldout = Path(heldout or kind.heldout)
    if not heldout.is_file():
        raise AgentError(f"held-out file not found: {heldout}")
    current_dir = model_versions.current(models_dir, info["kind"])
    current_id = model_versions.read_version(current_dir)["id"] if current_dir else model_versions.SHIPPED
    print(f"evaluating {current_id} and {info['id']} on {heldout} ...", file=sys.stderr)
    old = kind.evaluate(current_dir or kind.shipped, heldout)
    new = kind.evaluate(candidate, heldout)
    result = Comparison(info["kind"], info["id"], current_id, str(heldout), tolerance=tolerance)
    for name in kind.metrics:
        result.metrics[name] = {"current": old[name], "candidate": new[name], "change": round(new[name] - old[name], 4)}
        if new[name] < old[name] - tolerance:
            result.worse.append(name)
    return result


def promote(models_dir: str | Path, candidate: str | Path, heldout: str | Path | None = None,
            tolerance: float | None = None, force: bool = False) -> tuple[Comparison | None, dict]:
    """Compare, then install and point at ``candidate``; a worse one is refused unless ``force``.
    With ``force`` a kind that cannot be judged is promoted without a comparison (None)."""
    info = model_versions.read_version(candidate)
    if model_versions.pointer(models_dir, info["kind"]).get("version") == info["id"]:
        raise AgentError(f"{info['id']} is already the promoted {info['kind']} model")
    try:
        comparison = compare(models_dir, candidate, heldout, tolerance)
    except AgentError:
        if not force:
            raise
        comparison = None
    if comparison is not None and comparison.worse and not force:
        print(comparison.table(), file=sys.stderr)
        raise AgentError(f"not promoted: {info['id']} is worse than {comparison.current} on "
                         f"{', '.join(comparison.worse)} (by more than {comparison.tolerance:g}); "
                         "--force promotes it anyway")
    target = model_versions.install(models_dir, candidate)
    return comparison, model_versions.set_current(models_dir, info["kind"], target.name)
