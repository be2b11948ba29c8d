"""Promotion: a trained version replaces the promoted one only if it is not worse on a fixed held-out set.

Each kind's fine-tune module says how to judge it, with four names:

    heldout_metrics(model_dir, heldout_file) -> dict   metrics of one model on one labelled file
    PROMOTION_METRICS                                  the keys compared; higher is better
    DEFAULT_HELDOUT                                    the repository's fixed held-out file
    SHIPPED                                            the artefact in use before any promotion

Both the promoted model and the candidate are evaluated now, on the same file, so the comparison
never rests on numbers measured on different data. The storage side (copying versions in, the
pointer, rollback) is agent/models.py.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent import models
from agent.types import AgentError

JUDGES = {"intent": "finetune.intent", "generator": "finetune.generator"}
TOLERANCE = 0.005  # half a point: below the noise of a 1,000-example held-out set


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


def judge(kind: str):
    """The fine-tune module that evaluates ``kind``, with the names promotion needs."""
    if kind not in JUDGES:
        raise AgentError(f"unknown model kind '{kind}' (known: {', '.join(JUDGES)})")
    module = importlib.import_module(JUDGES[kind])
    needed = ("heldout_metrics", "PROMOTION_METRICS", "DEFAULT_HELDOUT", "SHIPPED")
    missing = [name for name in needed if not hasattr(module, name)]
    if missing:
        raise AgentError(f"{JUDGES[kind]} cannot judge {kind} versions yet (missing {', '.join(missing)}); "
                         "promote with --force to skip the comparison")
    return module


def compare(models_dir: str | Path, candidate: str | Path, heldout: str | Path | None = None,
            tolerance: float | None = None) -> Comparison:
    tolerance = TOLERANCE if tolerance is None else tolerance
    info = models.read_version(candidate)
    module = judge(info["kind"])
    heldout = Path(heldout or module.DEFAULT_HELDOUT)
    if not heldout.is_file():
        raise AgentError(f"held-out file not found: {heldout}")
    current_dir = models.current(models_dir, info["kind"])
    current_id = models.read_version(current_dir)["id"] if current_dir else models.SHIPPED
    print(f"evaluating {current_id} and {info['id']} on {heldout} ...", file=sys.stderr)
    old = module.heldout_metrics(current_dir or module.SHIPPED, heldout)
    new = module.heldout_metrics(candidate, heldout)
    result = Comparison(info["kind"], info["id"], current_id, str(heldout), tolerance=tolerance)
    for name in module.PROMOTION_METRICS:
        result.metrics[name] = {"current": old[name], "candidate": new[name], "change": round(new[name] - old[name], 4)}
        if new[name] < old[name] - tolerance:
            result.worse.append(name)
    return result


def promote(models_dir: str | Path, candidate: str | Path, heldout: str | Path | None = None,
            tolerance: float | None = None, force: bool = False) -> tuple[Comparison | None, dict]:
    """Compare, then install and point at ``candidate``; a worse one is refused unless ``force``.
    With ``force`` a kind that cannot be judged is promoted without a comparison (None)."""
    info = models.read_version(candidate)
    if models.pointer(models_dir, info["kind"]).get("version") == info["id"]:
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
    target = models.install(models_dir, candidate)
    return comparison, models.set_current(models_dir, info["kind"], target.name)
