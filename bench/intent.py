"""Intent benchmark: the agent's classifier beside TF-IDF + logistic regression, trained in the same run.

    python bench/intent.py [--model DIR] [--test FILE] [--oos FILE ...] [--repeats 200]

Held-out data: ``--test`` if given (e.g. the Banking77 test split), else the validation split that
finetune/intent.py held out (same seed; it was used for early stopping and thresholds, so figures
on it are slightly optimistic). Prints accuracy, macro-F1, escalation figures, single-message
latency (median, p95) and batch throughput, for the agent's classifier on both encoder runtimes
(ONNX Runtime, the default, and torch) and for the TF-IDF baseline; and accuracy again with one to
three customer details (card digits, order numbers, contact details, dates, amounts from
``bench/entity_clauses.txt``, worded unlike the training augmentation) added to each message, and
on hand-written requests full of details (``data/examples/entity_heavy*.jsonl``: 30 one-line requests, and
two sets of 80 whole emails, chats and call transcripts, where "answered" also counts every hand-over reason, as
``support-agent classify`` reports it). Out of scope:
the share of each ``--oos`` file escalated (default: every file in ``data/out_of_scope/``), beside
the same head scoring by the Mahalanobis distance alone, its threshold fitted the same way on the
validation split in the same run. Hand-over: for each set in ``data/handover/``, the messages of each
reason handed over (and with the right reason), and the ordinary requests handed over, by the cues
alone and with the model's learned hand-over detector.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.pipeline import Agent  # noqa: E402
from agent.sentiment import REASONS, handover_reason, sentiment  # noqa: E402
from agent.settings import Settings  # noqa: E402
from finetune.data import read_examples  # noqa: E402
from finetune.intent import DEFAULT_OOS, DEFAULT_TRAIN, ESCALATE_BUDGET, escalations, fit_thresholds  # noqa: E402


def split(train_file: str, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    ex = read_examples(train_file)
    return train_test_split([e.text for e in ex], [e.intent for e in ex], test_size=fraction,
                            stratify=[e.intent for e in ex], random_state=seed)


CLAUSES = Path(__file__).with_name("entity_clauses.txt")
REPO = Path(__file__).resolve().parent.parent
ENTITY_HEAVY = sorted((REPO / "data" / "examples").glob("entity_heavy*.jsonl"))


def with_details(texts: list[str], seed: int) -> list[str]:
    """Each text with one to three of the clauses, filled in at random, before (30%) or after it."""
    clauses = [c for c in CLAUSES.read_text(encoding="utf-8").splitlines() if c.strip() and not c.startswith("#")]
    rng = random.Random(seed)

    def clause() -> str:
        return rng.choice(clauses).format(d2=rng.randint(10, 99), d4=rng.randint(1000, 9999),
                                          d6=rng.randint(100000, 999999), day=rng.randint(10, 28),
                                          name=rng.choice(["jane.doe", "bob", "m.smith", "k.osei"]))

    out = []
    for text in texts:
        added = " ".join(clause() for _ in range(rng.randint(1, 3)))
        text = text.strip()
        out.append(f"{added} {text}" if rng.random() < 0.3 else
                   f"{text}{'' if text[-1:] in ('.', '?', '!') else '.'} {added}")
    return out


def distance_alone(head, embeddings: np.ndarray, texts: list[str], labels: list[str]):
    """``head`` scoring out of scope by the Mahalanobis distance alone (as models did before the
    energy term), both thresholds fitted on these validation messages the way finetune/intent.py fits them."""
    alone = dataclasses.replace(head, oos=dataclasses.replace(head.oos, scale=None))
    fit_thresholds(alone, embeddings, np.array([alone.labels.index(y) for y in labels]), texts,
                   alone.metrics.get("escalate_budget", ESCALATE_BUDGET), standardise=False)
    return alone


def latency(fn, texts: list[str], repeats: int) -> tuple[float, float]:
    for t in texts[:10]:
        fn(t)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(texts[i % len(texts)])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def throughput(fn, texts: list[str]) -> float:
    start = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - start)


HANDOVER_SETS = [REPO / "data" / "handover" / name for name in ("dev.jsonl", "test.jsonl", "independent.jsonl",
                                                                   "independent_2.jsonl")]


def handover_figures(clf, path: Path) -> tuple[dict, dict]:
    """Per label of a hand-over set: (handed over, with the right reason, messages), for the cues alone
    and for the cues with the model's hand-over detector."""
    examples = read_examples(path)
    predictions = clf.classify([e.text for e in examples])

    def tally(reasons):
        out = {}
        for label in [*REASONS, "none"]:
            got = [r for e, r in zip(examples, reasons) if e.intent == label]
            out[label] = (sum(r is not None for r in got),
                          sum(r is not None and r.startswith(REASONS.get(label, "-")) for r in got), len(got))
        return out
    cues = [handover_reason(e.text, sentiment(e.text)) for e in examples]
    combined = [handover_reason(e.text, sentiment(e.text), p.handover) for e, p in zip(examples, predictions)]
    return tally(cues), tally(combined)


def scores(truth, predicted) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    return float(np.mean([t == p for t, p in zip(truth, predicted)])), float(
        f1_score(truth, predicted, average="macro", zero_division=0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--train", default=str(DEFAULT_TRAIN))
    p.add_argument("--test")
    p.add_argument("--oos", nargs="+", help="files of out-of-scope queries, one a line; the table's oos column is "
                   "the first (default: the other-domain queries, then the rest of data/out_of_scope/)",
                   default=[str(DEFAULT_OOS)] + sorted(str(f) for f in DEFAULT_OOS.parent.glob("*.txt") if f != DEFAULT_OOS))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args()

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    tr_x, va_x, tr_y, va_y = split(args.train, 0.1, args.seed)
    validation = va_x, va_y  # what the distance-alone thresholds are fitted on, even with --test
    if args.test:
        held = read_examples(args.test)
        va_x, va_y = [e.text for e in held], [e.intent for e in held]
    oos_sets = {Path(f).name: [q.strip() for q in Path(f).read_text(encoding="utf-8").splitlines() if q.strip()]
                for f in args.oos}
    first_oos = next(iter(oos_sets))  # the table's oos column
    detailed = with_details(va_x, args.seed)
    heavy_sets = {f.name: read_examples(f) for f in ENTITY_HEAVY}
    print(f"held-out: {len(va_x)} messages ({'--test file' if args.test else 'validation split'}); "
          f"out-of-scope: {', '.join(f'{n} {len(q)}' for n, q in oos_sets.items())} queries", file=sys.stderr)

    rows = []
    t0 = time.perf_counter()
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(C=20, max_iter=3000)).fit(tr_x, tr_y)
    train_s = time.perf_counter() - t0
    acc, f1 = scores(va_y, tfidf.predict(va_x))
    med, p95 = latency(lambda t: tfidf.predict([t]), va_x, args.repeats)
    detailed_acc, _ = scores(va_y, tfidf.predict(detailed))
    rows.append(("TF-IDF + logistic regression", acc, f1, None, None, med, p95,
                 throughput(tfidf.predict, va_x),
                 f"trained here in {train_s:.0f} s; with customer details added: acc {detailed_acc:.3f}"))

    for runtime in ("onnx", "torch"):
        agent = Agent(Settings.load().replace(intent_model=args.model, encoder_runtime=runtime)).warm_up()
        clf = agent.classifier
        preds = clf.classify(va_x)
        predicted = [pr.top[0].intent for pr in preds]
        acc, f1 = scores(va_y, predicted)
        answered = [not clf.escalates(pr) for pr in preds]
        kept = float(np.mean([a and t == p for a, t, pr, p in zip(answered, va_y, preds, predicted)]))
        embedded = {n: (clf.encoder.encode(q), q) for n, q in oos_sets.items()}  # each set encoded once
        oos_escalated = float(escalations(clf.head, *embedded[first_oos]).mean())
        held_e = np.stack([pr.embedding for pr in preds])
        alone = None
        if clf.head.oos is not None and set(validation[1]) <= set(clf.head.labels):
            val_e = held_e if not args.test else clf.encoder.encode(validation[0])
            alone = distance_alone(clf.head, val_e, *validation)
        oos_note = "; out of scope escalated: " + ", ".join(
            f"{n} {escalations(clf.head, e, q).mean():.3f}"
            + ("" if alone is None else f" (distance alone {escalations(alone, e, q).mean():.3f})")
            for n, (e, q) in embedded.items())
        if alone is not None:
            right = np.array([t == p for t, p in zip(va_y, predicted)])
            oos_note += f"; kept by the distance alone {float((right & ~escalations(alone, held_e, va_x)).mean()):.3f}"
        # As `support-agent classify` reports it: every reason to escalate (a person asked for, anger, ...).
        understood = [agent.understand(t) for t in va_x]
        kept_all = float(np.mean([not u.escalate and u.intent == t for u, t in zip(understood, va_y)]))
        handed_over = float(np.mean([u.escalate and a for u, a in zip(understood, answered)]))
        detailed_preds = clf.classify(detailed)
        detailed_acc, _ = scores(va_y, [pr.top[0].intent for pr in detailed_preds])
        detailed_kept = float(np.mean([not clf.escalates(pr) and pr.top[0].intent == t
                                       for pr, t in zip(detailed_preds, va_y)]))
        heavy_notes = []
        for name, heavy in heavy_sets.items():
            heavy_preds = clf.classify([e.text for e in heavy])
            right = [pr.top[0].intent == e.intent for pr, e in zip(heavy_preds, heavy)]
            kept_alone = sum(r and not clf.escalates(pr) for r, pr in zip(right, heavy_preds))
            kept_agent = sum(not u.escalate and u.intent == e.intent for u, e in
                             zip((agent.understand(e.text) for e in heavy), heavy))
            heavy_notes.append(f"{name} {sum(right)}/{len(heavy)} right, answered {kept_alone} by the classifier, "
                               f"{kept_agent} with every reason")
        ablation = ""
        if clf.head.lexical is not None:  # what the lexical part adds: argmax of the head's own logits
            def head_alone(ps):
                return [clf.head.labels[i] for i in clf.head.logits(np.stack([p.embedding for p in ps])).argmax(axis=1)]
            ablation = (f"; without the lexical part: acc {scores(va_y, head_alone(preds))[0]:.3f}, with "
                        f"details {scores(va_y, head_alone(detailed_preds))[0]:.3f}")
        med, p95 = latency(lambda t: clf.classify([t]), va_x, args.repeats)
        full_med, full_p95 = latency(agent.understand, va_x, args.repeats)
        tput = statistics.median(throughput(clf.classify, va_x) for _ in range(3))
        rows.append((f"agent classifier on {runtime} ({clf.head.metrics.get('method', '?')})"[:58], acc, f1, kept,
                     oos_escalated, med, p95, tput,
                     f"full understanding (entities, sentiment): median {full_med:.1f} ms, p95 {full_p95:.1f} ms; "
                     f"with every escalation reason, kept {kept_all:.3f} ({handed_over:.1%} more handed over "
                     f"for the customer's words: a person asked for, anger, legal); with customer details "
                     f"added: acc {detailed_acc:.3f}, kept {detailed_kept:.3f}; hand-written requests full of "
                     f"details: {'; '.join(heavy_notes)}{ablation}{oos_note}"))
        if runtime == "onnx":
            handover_rows = [(f.name, *handover_figures(clf, f)) for f in HANDOVER_SETS if f.is_file()]

    print(f"\n{'model':58} {'acc':>6} {'mF1':>6} {'kept':>6} {'oos':>6} {'med ms':>7} {'p95 ms':>7} {'msg/s':>7}")
    for name, acc, f1, kept, oos_rate, med, p95, tput, note in rows:
        fmt = lambda v: f"{v:6.3f}" if v is not None else f"{'-':>6}"  # noqa: E731
        print(f"{name:58} {acc:6.3f} {f1:6.3f} {fmt(kept)} {fmt(oos_rate)} {med:7.2f} {p95:7.2f} {tput:7.0f}")
        print(f"    {note}")
    print("\nacc: top-1 accuracy; mF1: macro-F1; kept: correct and not escalated (in-scope); "
          "oos: share of out-of-scope queries escalated; latency for one message; msg/s for the whole "
          "held-out set in one call (median of 3).")
    print("\nhand-over messages (data/handover/): handed over, with the right reason in brackets, of each label; "
          "for 'none', the ordinary requests handed over (fewer is better)")
    for name, cues, combined in handover_rows:
        for title, tally in (("cues alone", cues), ("cues + hand-over model", combined)):
            print(f"  {name:12} {title:24} " + "  ".join(
                f"{label} {over}({right})/{n}" if label != "none" else f"none {over}/{n}"
                for label, (over, right, n) in tally.items()))


if __name__ == "__main__":
    main()
