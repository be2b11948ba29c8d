"""Intent benchmark: one-line queries and whole messages, accuracy, escalation and speed.

    python bench/intent.py [--model DIR] [--test FILE] [--oos FILE ...] [--messages FILE ...] [--repeats 200]

One-line queries: ``--test`` if given (e.g. the Banking77 test split), else the validation split that
finetune/intent.py held out (same seed; it chose the epochs and thresholds, so figures on it are
slightly optimistic). For the agent's classifier on both encoder runtimes (ONNX Runtime, the default,
and torch) and for a TF-IDF + logistic regression baseline trained in the same run: accuracy,
macro-F1, the share right and answered, latency of one message (median, p95) and throughput of the
whole set in one call; accuracy again with one to three customer details added to each query
(``bench/entity_clauses.txt``, worded unlike the training augmentation).

Out of scope: the share of each ``--oos`` file (default: every file in ``data/out_of_scope/``) that
the agent escalates, every reason counted (as ``support-agent classify`` reports it).

Hand-over: for each set in ``data/handover/``, the messages of each reason handed over (and with the
right reason), and the ordinary requests handed over, by the cues alone and with the learned detector.

Whole messages: each set in ``data/messages/eval/`` (and ``data/examples/entity_heavy_2``/``_3``), written
by people who had seen neither the model nor its data, through ``Agent.understand`` (JSONL) or the email
channel (an mbox with its labels): intent right, ordinary messages escalated or given a request they do
not make, both requests of a two-request message found, hand-overs and out-of-scope requests escalated,
overall and by channel.
Speed on whole emails of 40 to 80 words: one at a time (median, p95) and in one batch, beside the same
emails embedded without their sentences (what reading the parts costs).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.handover import REASONS, handover_reason  # noqa: E402
from agent.labelled import read_examples  # noqa: E402
from agent.pipeline import Agent  # noqa: E402
from agent.sentiment import sentiment  # noqa: E402
from agent.settings import Settings  # noqa: E402
from finetune import message_sets  # noqa: E402
from finetune.intent import DEFAULT_OOS, DEFAULT_TRAIN  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLAUSES = Path(__file__).with_name("entity_clauses.txt")
EVAL = REPO / "data" / "messages" / "eval"
DEFAULT_SETS = [*sorted(f for f in EVAL.glob("*.jsonl") if not f.stem.endswith("_labels")), *(REPO / "data" / "examples" / f"entity_heavy_{n}.jsonl" for n in (2, 3))]
HANDOVER_SETS = [REPO / "data" / "handover" / name for name in ("dev.jsonl", "test.jsonl", "independent.jsonl",
                                                                   "independent_2.jsonl")]


def split(train_file: str, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    ex = read_examples(train_file)
    return train_test_split([e.text for e in ex], [e.intent for e in ex], test_size=fraction,
                            stratify=[e.intent for e in ex], random_state=seed)


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


def throughput(fn, texts: list[str], runs: int = 3) -> float:
    """Texts a second through ``fn(texts)``: the median of ``runs`` runs."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def accuracy(truth, predicted) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    return float(np.mean([t == p for t, p in zip(truth, predicted)])), float(
        f1_score(truth, predicted, average="macro", zero_division=0))


def handover_figures(agent, path: Path) -> tuple[dict, dict]:
    """Per label of a hand-over set: (handed over, with the right reason, messages), for the cues alone
    and for the agent (cues and the learned detector, on the customer's own sentences)."""
    examples = read_examples(path)
    predictions = agent.classifier.classify([e.text for e in examples])

    def tally(reasons):
        out = {}
        for label in [*REASONS, "none"]:
            got = [r for e, r in zip(examples, reasons) if e.intent == label]
            out[label] = (sum(r is not None for r in got),
                          sum(r is not None and r.startswith(REASONS.get(label, "-")) for r in got), len(got))
        return out
    texts = [p.reading.text for p in predictions]
    cues = [handover_reason(t, sentiment(t)) for t in texts]
    combined = [handover_reason(t, sentiment(t), p.handover) for t, p in zip(texts, predictions)]
    return tally(cues), tally(combined)


def one_line_row(agent, va_x, va_y, detailed, repeats) -> tuple:
    clf = agent.classifier
    predictions = clf.classify(va_x)
    predicted = [p.top[0].intent for p in predictions]
    acc, f1 = accuracy(va_y, predicted)
    understood = [agent.understand(t) for t in va_x]
    kept = float(np.mean([not u.escalate and u.intent == t for u, t in zip(understood, va_y)]))
    detailed_u = [agent.understand(t) for t in detailed]
    detailed_acc = float(np.mean([u.intent == t for u, t in zip(detailed_u, va_y)]))
    detailed_kept = float(np.mean([not u.escalate and u.intent == t for u, t in zip(detailed_u, va_y)]))
    med, p95 = latency(lambda t: clf.classify([t]), va_x, repeats)
    full_med, _ = latency(agent.understand, va_x, repeats)
    rate = throughput(clf.classify, va_x)
    note = (f"understand (entities, sentiment, escalation) median {full_med:.1f} ms; with customer details added: "
            f"acc {detailed_acc:.3f}, kept {detailed_kept:.3f}")
    return acc, f1, kept, med, p95, rate, note


def whole_email_speed(agent, emails: list[str], repeats: int) -> str:
    clf = agent.classifier
    med, p95 = latency(agent.understand, emails, repeats)
    bare_med, _ = latency(lambda t: clf.encoder.encode([t]), emails, repeats)
    rate = throughput(clf.classify, emails)
    bare_rate = throughput(clf.encoder.encode, emails)
    words = statistics.median(len(e.split()) for e in emails)
    return (f"{len(emails)} whole emails (median {words:.0f} words): understood one at a time median {med:.1f} ms "
            f"(p95 {p95:.1f}), {rate:.0f} emails/s classified in one batch; the same texts only embedded "
            f"(no sentences, no decisions): {bare_med:.1f} ms, {bare_rate:.0f}/s")


def main() -> None:
    args = parse_args()
    agent = one_line_queries(args)
    out_of_scope(agent, args.oos)
    hand_over_sets(agent)
    whole_messages(agent, args.messages, args.mailboxes, args.repeats)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--train", default=str(DEFAULT_TRAIN))
    p.add_argument("--test")
    p.add_argument("--oos", nargs="+", help="files of out-of-scope queries, one a line (default: data/out_of_scope/)",
                   default=sorted(str(f) for f in DEFAULT_OOS.parent.glob("*.txt")))
    p.add_argument("--messages", nargs="+", default=[str(f) for f in DEFAULT_SETS if f.is_file()],
                   help="whole-message sets: JSONL (see finetune/message_sets.py), or an mbox with FILE_labels.jsonl")
    p.add_argument("--mailboxes", nargs="+", default=[str(f) for f in sorted(EVAL.glob("*.mbox"))])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args()


def one_line_queries(args: argparse.Namespace) -> Agent:
    """The TF-IDF baseline and the agent's classifier on both runtimes; returns the agent on ONNX Runtime."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    tr_x, va_x, tr_y, va_y = split(args.train, 0.1, args.seed)
    if args.test:
        held = read_examples(args.test)
        va_x, va_y = [e.text for e in held], [e.intent for e in held]
    detailed = with_details(va_x, args.seed)
    print(f"one-line queries: {len(va_x)} ({'--test file' if args.test else 'validation split'})", file=sys.stderr)

    rows = []
    t0 = time.perf_counter()
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(C=20, max_iter=3000)).fit(tr_x, tr_y)
    train_s = time.perf_counter() - t0
    acc, f1 = accuracy(va_y, tfidf.predict(va_x))
    med, p95 = latency(lambda t: tfidf.predict([t]), va_x, args.repeats)
    rows.append(("TF-IDF + logistic regression", acc, f1, None, med, p95, throughput(tfidf.predict, va_x),
                 f"trained here in {train_s:.0f} s; with customer details added: "
                 f"acc {accuracy(va_y, tfidf.predict(detailed))[0]:.3f}"))
    agents = {}
    for runtime in ("onnx", "torch"):
        agent = agents[runtime] = Agent(Settings.load().replace(intent_model=args.model,
                                                                encoder_runtime=runtime)).warm_up()
        rows.append((f"agent classifier on {runtime}", *one_line_row(agent, va_x, va_y, detailed, args.repeats)))

    print(f"\n{'one-line queries':40} {'acc':>6} {'mF1':>6} {'kept':>6} {'med ms':>7} {'p95 ms':>7} {'msg/s':>7}")
    for name, acc, f1, kept, med, p95, rate, note in rows:
        print(f"{name:40} {acc:6.3f} {f1:6.3f} {'-' if kept is None else f'{kept:.3f}':>6} {med:7.2f} {p95:7.2f} "
              f"{rate:7.0f}\n    {note}")
    print("acc: top-1 accuracy; mF1: macro-F1; kept: right and answered, every escalation reason counted; latency "
          "of one message; msg/s: the whole set in one call (median of 3 runs)")
    return agents["onnx"]


def out_of_scope(agent: Agent, paths: list[str]) -> None:
    print("\nout of scope: escalated, every reason counted")
    for path in paths:
        queries = [q.strip() for q in Path(path).read_text(encoding="utf-8").splitlines() if q.strip()]
        understood = [agent.understand(q) for q in queries]
        as_oos = sum(bool(u.reason and u.reason.startswith("out of scope")) for u in understood)
        print(f"  {Path(path).name:32} {sum(u.escalate for u in understood):4d}/{len(queries)}  "
              f"({as_oos} as out of scope)")


def hand_over_sets(agent: Agent) -> None:
    print("\nhand-over sets (data/handover/): handed over (with the right reason) of each label; for 'none', "
          "ordinary requests handed over (fewer is better)")
    for path in HANDOVER_SETS:
        for title, tally in zip(("cues alone", "cues + detector"), handover_figures(agent, path)):
            print(f"  {path.name:20} {title:16} " + "  ".join(
                f"{label} {over}({right})/{n}" if label != "none" else f"none {over}/{n}"
                for label, (over, right, n) in tally.items()))


def whole_messages(agent: Agent, sets: list[str], mailboxes: list[str], repeats: int) -> None:
    """Each set's figures, overall and by channel; then the speed of 40-80-word emails from the sets."""
    print("\nwhole messages (written blind): overall, then by channel")
    emails = []
    for path in sets:
        messages = message_sets.read_set(path)
        emails += [m["text"] for m in messages if m.get("channel") == "email" and 40 <= len(m["text"].split()) <= 80]
        result = message_sets.score(messages, (message_sets.understood(agent, m["text"]) for m in messages))
        print(f"  {Path(path).name} ({len(messages)} messages)")
        for line in result.lines():
            print(f"    {line}")
    for path in mailboxes:
        pairs = message_sets.mailbox(path, Path(path).with_name(Path(path).stem + "_labels.jsonl"))
        result = message_sets.score([m for _, m in pairs], (message_sets.answered_email(agent, raw) for raw, _ in pairs))
        print(f"  {Path(path).name} ({len(pairs)} emails, through the email channel)")
        for line in result.lines(by_channel=False):
            print(f"    {line}")
    if emails:
        print("\n" + whole_email_speed(agent, emails, repeats))


if __name__ == "__main__":
    main()
