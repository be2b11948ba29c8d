"""Prepare training data for the intent model from new transcripts, emails and feedback.

    python -m finetune.prepare --new records.jsonl feedback.jsonl --out prepared/ [--allow-new-intents]

Steps: read the new files (labelled CSV/JSONL rows, or training records from the agent and the demo's
feedback) and the existing training data; mask PII in every text; keep a record's label only when a
person gave it (``corrected_intent``) or the model was sure (answered, confidence at least
``--min-confidence``); check labels against the known intents; drop exact and near duplicates
(character n-gram Jaccard similarity) and anything that duplicates the fixed held-out set promotion
compares on; split stratified by intent with a fixed seed. Writes ``train.jsonl`` and
``validation.jsonl`` (fields ``text``, ``intent``) and ``report.json`` (counts per intent, lengths, what
was dropped and why). A bad row is reported and skipped; it never stops the run.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.labelled import label_of, rows
from agent.logs import redact
from agent.records import Record
from agent.types import AgentError
from finetune import script

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASE = REPO / "data" / "banking77" / "train.csv"
DEFAULT_HELDOUT = REPO / "data" / "heldout" / "intent.jsonl"
RECORD_KEYS = {"confidence", "reply", "corrected_intent"}  # a row with these is a training record
LABEL = re.compile(r"^\w[\w?.-]{0,63}$")  # Banking77 has "reverted_card_payment?"
EXAMPLES_PER_REASON = 20  # report.json shows this many dropped texts per reason, and counts them all


@dataclass
class Options:
    new: list[str]
    out: str
    base_data: list[str]
    heldout: str | None
    allow_new_intents: bool = False
    min_confidence: float = 0.9
    near: float = 0.9
    validation_fraction: float = 0.1
    seed: int = 13


@dataclass
class Candidate:
    text: str  # masked
    intent: str
    source: str  # "file:line"
    new: bool  # from --new (wins over base data when labels conflict)


def parse_args(argv=None) -> Options:
    p = argparse.ArgumentParser(prog="python -m finetune.prepare", description=__doc__.splitlines()[0])
    p.add_argument("--new", nargs="+", required=True, metavar="FILE",
                   help="new data: CSV/JSONL with text and intent, or training records / feedback (JSONL)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--base-data", action="append", metavar="FILE",
                   help=f"existing training data, repeatable (default: {DEFAULT_BASE.relative_to(REPO)})")
    p.add_argument("--heldout", default=str(DEFAULT_HELDOUT) if DEFAULT_HELDOUT.is_file() else None,
                   help="the fixed held-out set promotion compares on; its texts are kept out of training "
                        "('' for none)")
    p.add_argument("--allow-new-intents", action="store_true",
                   help="add intents the existing data does not have (default: report and drop them)")
    p.add_argument("--min-confidence", type=float, default=0.9,
                   help="an uncorrected record is used only if it was answered with at least this confidence")
    p.add_argument("--near", type=float, default=0.9,
                   help="character 3-gram Jaccard similarity at which two texts are near duplicates")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=13)
    a = p.parse_args(argv)
    return Options(new=a.new, out=a.out, base_data=a.base_data or [str(DEFAULT_BASE)], heldout=a.heldout or None,
                   allow_new_intents=a.allow_new_intents, min_confidence=a.min_confidence, near=a.near,
                   validation_fraction=a.validation_fraction, seed=a.seed)


def normalise(text: str) -> str:
    """What duplicates share: case, punctuation and spacing removed; placeholders stay as words."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class Dropped:
    """What was dropped and why: counts per reason and a few (masked) examples of each."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.examples: dict[str, list] = defaultdict(list)

    def add(self, reason: str, source: str, text: str = "", detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append({"source": source, "text": text[:200], **({"detail": detail} if detail else {})})

    def to_dict(self) -> dict:
        return {"total": sum(self.counts.values()), "by_reason": dict(self.counts.most_common()),
                "examples": dict(self.examples)}


def read_candidates(path: str, new: bool, min_confidence: float, dropped: Dropped) -> list[Candidate]:
    """The labelled, masked texts of one file; each unusable row goes to ``dropped`` with its reason."""
    found = []
    for number, row in rows(path):
        source = f"{Path(path).name}:{number}"
        if isinstance(row, AgentError):
            dropped.add("unreadable row", source, str(row))
            continue
        if RECORD_KEYS & row.keys():
            try:
                record = Record.from_dict(row)
            except (AgentError, TypeError) as exc:
                dropped.add("unreadable record", source, str(exc))
                continue
            text, label, why = str(record.text), *record_label(record, min_confidence)
        else:
            text, label, why = str(row.get("text") or ""), label_of(row), "no intent label"
        text = redact(text).strip()  # records are masked already; other sources may not be
        if not text:
            dropped.add("empty text", source)
        elif not label:
            dropped.add(why, source, text)
        elif not LABEL.match(label):
            dropped.add("invalid intent name (a word of letters, digits, _ - . ?)", source, text)
        else:
            found.append(Candidate(text, label, source, new))
    return found


def record_label(record: Record, min_confidence: float) -> tuple[str, str]:
    """(label or "", why not): a person's correction, else a prediction the agent was sure of."""
    if record.corrected_intent:
        return record.corrected_intent.strip(), ""
    if record.escalate:
        return "", "unconfirmed prediction: escalated"
    if float(record.confidence) < min_confidence:
        return "", f"unconfirmed prediction: confidence below {min_confidence:g}"
    return record.intent.strip(), ""


def ngram_sets(texts: list[str]):
    """A binary (texts x hashed character 3-grams) sparse matrix and each row's number of 3-grams."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectoriser = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=1 << 20, binary=True,
                                   norm=None, alternate_sign=False)
    matrix = vectoriser.transform(texts).tocsr().astype(np.float32)
    return matrix, np.asarray(matrix.sum(axis=1)).ravel()


def deduplicate(candidates: list[Candidate], heldout: list[str], near: float, dropped: Dropped) -> list[Candidate]:
    """``candidates`` without exact or near duplicates of an earlier kept one (or of a held-out text).
    Earlier wins, and new data comes first, so a new label beats an old one for the same text."""
    from tqdm import tqdm

    refs = [normalise(t) for t in heldout]
    norms = [normalise(c.text) for c in candidates]
    matrix, sizes = ngram_sets(refs + norms)
    kept = np.zeros(len(refs) + len(norms), dtype=bool)
    kept[:len(refs)] = True
    exact: dict[str, int] = {n: i for i, n in enumerate(refs)}
    block = 512
    for start in tqdm(range(0, len(norms), block), desc="deduplicating", unit="block", disable=len(norms) < 5000):
        rows_ = slice(len(refs) + start, len(refs) + min(start + block, len(norms)))
        shared = (matrix[rows_] @ matrix.T).toarray()  # 3-grams in common, this block x everything
        for offset, row in enumerate(shared):
            i = rows_.start + offset
            c = candidates[i - len(refs)]
            jaccard = row[:i] / np.maximum(sizes[i] + sizes[:i] - row[:i], 1)
            similar = np.flatnonzero((jaccard >= near) & kept[:i])
            twin = exact.get(norms[i - len(refs)])
            match = twin if twin is not None else (int(similar[np.argmax(jaccard[similar])]) if similar.size else None)
            if match is None:
                kept[i] = True
                exact[norms[i - len(refs)]] = i
                continue
            kind = "duplicate" if twin is not None else "near duplicate"
            if match < len(refs):
                dropped.add(f"{kind} of a held-out example (kept out of training)", c.source, c.text)
            elif candidates[match - len(refs)].intent == c.intent:
                dropped.add(kind, c.source, c.text)
            else:
                other = candidates[match - len(refs)]
                dropped.add(f"{kind} with a different intent", c.source, c.text,
                            f"'{c.intent}' lost to '{other.intent}' of {other.source}")
    return [c for c, k in zip(candidates, kept[len(refs):]) if k]


def split(candidates: list[Candidate], fraction: float, seed: int) -> tuple[list[Candidate], list[Candidate]]:
    """Stratified: about ``fraction`` of each intent to validation, at least one to training, and at
    least one to validation once an intent has five examples."""
    by_intent: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_intent[c.intent].append(c)
    rng = random.Random(seed)
    train, validation = [], []
    for intent in sorted(by_intent):
        group = by_intent[intent][:]
        rng.shuffle(group)
        n_val = min(len(group) - 1, max(int(len(group) >= 5), round(fraction * len(group))))
        validation += group[:n_val]
        train += group[n_val:]
    rng.shuffle(train)
    return train, validation


def lengths(texts: list[str]) -> dict:
    words = np.array([len(t.split()) for t in texts]) if texts else np.zeros(1)
    return {"words": {"min": int(words.min()), "p50": int(np.percentile(words, 50)),
                      "p90": int(np.percentile(words, 90)), "max": int(words.max()),
                      "mean": round(float(words.mean()), 1)}}


def prepare(opts: Options) -> dict:
    if not 0 < opts.validation_fraction < 1:
        raise AgentError("--validation-fraction must be between 0 and 1")
    dropped = Dropped()
    new = [c for path in opts.new for c in read_candidates(path, True, opts.min_confidence, dropped)]
    base = [c for path in opts.base_data for c in read_candidates(path, False, opts.min_confidence, dropped)]
    read = {"new": len(new), "base": len(base)}
    known = {c.intent for c in base}
    if not known:
        raise AgentError("the base data holds no labelled examples")
    unknown = Counter(c.intent for c in new if c.intent not in known)
    if not opts.allow_new_intents:
        for c in new:
            if c.intent in unknown:
                dropped.add(f"unknown intent '{c.intent}' (add it with --allow-new-intents)", c.source, c.text)
        new = [c for c in new if c.intent not in unknown]
    heldout = [redact(str(r.get("text") or "")) for _, r in rows(opts.heldout)
               if isinstance(r, dict)] if opts.heldout else []
    kept = deduplicate(new + base, heldout, opts.near, dropped)
    train, validation = split(kept, opts.validation_fraction, opts.seed)

    out = Path(opts.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, part in (("train.jsonl", train), ("validation.jsonl", validation)):
            with open(out / name, "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": c.text, "intent": c.intent}, ensure_ascii=False) + "\n"
                             for c in part)
    except OSError as exc:
        raise AgentError(f"cannot write to {out}: {exc.strerror or exc}") from None
    per_intent = {i: {"train": 0, "validation": 0} for i in sorted({c.intent for c in kept})}
    for part, name in ((train, "train"), (validation, "validation")):
        for c in part:
            per_intent[c.intent][name] += 1
    new_intents = sorted(unknown) if opts.allow_new_intents else []
    report = {
        "inputs": {"new": opts.new, "base_data": opts.base_data, "heldout": opts.heldout},
        "options": {"min_confidence": opts.min_confidence, "near": opts.near,
                    "validation_fraction": opts.validation_fraction, "seed": opts.seed},
        "read": read,
        "train": len(train), "validation": len(validation), "intents": len(per_intent),
        "new_intents": {i: per_intent.get(i, {"train": 0, "validation": 0}) for i in new_intents},
        "unknown_intents": {} if opts.allow_new_intents else dict(unknown),
        "masked": dict(Counter(p for c in kept for p in re.findall(r"\[(CARD_NUMBER|IBAN|EMAIL|PHONE|NAME)\]",
                                                                    c.text))),
        "lengths": {"train": lengths([c.text for c in train]), "validation": lengths([c.text for c in validation])},
        "per_intent": per_intent,
        "dropped": dropped.to_dict(),
        "warnings": [f"intent '{i}' has only {n['train']} training examples; a few dozen are needed"
                     for i, n in per_intent.items() if n["train"] < 20],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def main(argv=None) -> int:
    opts = parse_args(argv)

    def work() -> dict:
        report = prepare(opts)
        return {"out": opts.out, "train": report["train"], "validation": report["validation"],
                "intents": report["intents"], "new_intents": sorted(report["new_intents"]),
                "unknown_intents": report["unknown_intents"], "dropped": report["dropped"]["by_reason"],
                "warnings": report["warnings"]}
    return script.run("finetune.prepare", work)


if __name__ == "__main__":
    sys.exit(main())
