"""Train the intent classifier: LoRA fine-tuning of a mean-pooled sentence encoder, or a linear head.

    python -m finetune.intent --train data/banking77/train.csv --out agent/data/intent
    python -m finetune.intent --data prepared/ --init-from default --method head --out runs/intent-v2

Steps, all with fixed seeds: a stratified validation split (or ``--validation``, or ``--data DIR`` with
``train.jsonl`` and ``validation.jsonl`` from ``finetune.prepare``); a multinomial logistic-regression head
on the frozen encoder's embeddings (``--method head`` stops here; for ``lora`` it initialises the
head); for ``lora``, the Hugging Face Trainer fine-tunes LoRA adapters on every linear layer of the
encoder together with the head (mean pooling, as the encoder was pre-trained), with early stopping
on validation accuracy and a checkpoint each epoch (``--resume`` continues an interrupted run),
in batches of similar length (``LengthGroupedEpochs``: less than half the padding, twice as fast);
in each epoch a training example has customer details (card digits, order numbers, contact
details, dates, amounts) added with probability ``--entity-noise`` (``finetune/augment.py``);
a share of the queries (``--messages``) are read inside whole messages built around them
(``finetune/messages.py``: emails, chats, call transcripts, some with a second request), and the model
learns each message and each of its sentences (``finetune/intent_model.py``);
a TF-IDF logistic regression on the training texts (``agent/lexical.py``; ``--no-lexical``
leaves it out); then a temperature and the lexical model's weight, fitted together on validation
(calibrated probabilities), out-of-scope statistics
(class means and a tied covariance of training embeddings) and two escalation thresholds. The
budget (``--escalate-budget``) is the share of correctly answered validation messages that the two
thresholds may escalate, half each (``finetune/calibration.py``; ``python -m finetune.thresholds``
refits them under another budget without retraining). Writes the artefact plus metrics.json, report.txt,
confusion.png and version.json (data hash, base model, settings, metrics, parent version: see
agent/models.py).

``--refit`` then trains once more from the start, on the training and validation data together, for
the epochs the validated run was best at (on that run's learning-rate schedule), and ships that model
with the validated run's temperature, lexical weight, thresholds and out-of-scope standardisation
(as scikit-learn's ``refit``): no data is left to measure it, so metrics.json reports the validated
run (``selected`` holds its ``--eval`` and out-of-scope figures, ``refit`` the second run). It takes
about twice as long. Do not use it when the validation data is the held-out set that promotion
compares versions on (the shipped default's is: ``data/heldout/intent.jsonl``).

``--init-from MODEL`` starts from a trained artefact's encoder and LoRA adapter instead of the bare
encoder, and keeps its temperature, lexical weight and escalation thresholds (``--recalibrate``
refits them): validation data drawn from what that encoder trained on cannot measure them. Refitted
on such data (``finetune.prepare`` splits Banking77's training queries again), the head looked 99%
right, the lexical model got weight 0 and the confidence threshold rose from 0.32 to 0.77; the
old intents lost 0.8 point on the held-out set instead of 0.3. The lexical model itself is refitted
on the new training data.
With ``--method head`` the adapter is kept as it is and only the head, the lexical model and the
out-of-scope statistics are retrained, the head warm-started from the artefact's (how a new intent
is taught from a few dozen examples without disturbing the others; embedding the training texts is
most of the time, about 6 minutes for 9,000 on 2 busy CPU cores); with ``--method lora`` the adapter
trains on.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agent import models
from agent.encoder import SentenceEncoder
from agent.intent import DEFAULT_DIR, OUT_OF_SCOPE, IntentClassifier, IntentHead, OutOfScope
from agent.lexical import LexicalModel
from agent.settings import Settings
from agent.types import AgentError
from finetune import processes, script
from finetune.calibration import (calibrate, escalations, evaluate, fit_second_threshold, fit_thresholds,
                                  handed_over)
from finetune.data import read_examples
from finetune.handover import default_train as default_handover, fit as fit_handover, read_handover
from finetune.handover import summary as handover_summary
from finetune.intent_data import IGNORE, Drawn, Embedded, draw_text, embed, load_data
from finetune.intent_model import Embeddings, anchored_head, fine_tune, linear_head
from finetune.messages import MessageBuilder

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO / "data" / "banking77" / "train.csv"
DEFAULT_OOS = REPO / "data" / "out_of_scope" / "queries.txt"
DEFAULT_OOS_TRAIN = REPO / "data" / "out_of_scope" / "train.jsonl"
OOS_VALIDATION_FRACTION = 0.15  # of --oos-train, held out with the validation queries
# Share of correctly answered validation messages the classifier's thresholds may escalate. Validation
# messages are built like the training ones; messages people write escalate several times more often.
ESCALATE_BUDGET = 0.005
DEFAULT_HELDOUT = REPO / "data" / "heldout" / "intent.jsonl"  # what promotion compares versions on
SHIPPED = DEFAULT_DIR
PROMOTION_METRICS = ("accuracy", "macro_f1")  # compared on the held-out set; higher is better


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.intent", description=__doc__.splitlines()[0])
    p.add_argument("--train", default=str(DEFAULT_TRAIN), help="CSV or JSONL with text and intent/category")
    p.add_argument("--validation", help="labelled validation file (default: a split of --train)")
    p.add_argument("--data", metavar="DIR", help="prepared data: DIR/train.jsonl and DIR/validation.jsonl "
                   "(from python -m finetune.prepare)")
    p.add_argument("--out", required=True, help="directory for the model artefact")
    p.add_argument("--init-from", metavar="MODEL", help="start from this intent model's encoder and adapter "
                   "('default': the promoted version, else the shipped one)")
    p.add_argument("--models-dir", help="model versions, for --init-from default (default: setting 'models_dir')")
    p.add_argument("--anchor", type=float, default=1.0, help="with --init-from and --method head: how strongly "
                   "the parent's intents keep their head rows (0: free)")
    p.add_argument("--base", default="all-MiniLM-L6-v2", help="encoder: packaged name, HF id or path")
    p.add_argument("--eval", help="optional labelled file for a final held-out evaluation")
    p.add_argument("--oos", default=str(DEFAULT_OOS) if DEFAULT_OOS.is_file() else None,
                   help="out-of-scope queries, one per line, to report how many are escalated")
    p.add_argument("--method", choices=("lora", "head"), default="lora")
    p.add_argument("--epochs", type=float, default=8)
    p.add_argument("--patience", type=int, default=2, help="epochs without improvement before stopping")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--entity-noise", type=float, default=0.5, metavar="SHARE",
                   help="with --method lora: the share of training examples given added card digits, order "
                        "numbers, contact details, dates or amounts each time they are read (0: none)")
    p.add_argument("--messages", type=float, default=0.5, metavar="SHARE",
                   help="with --method lora: the share of training queries read inside a whole message (an email, "
                        "chat or call built around them, finetune/messages.py) each time they are read; the "
                        "model's calibration and thresholds are also fitted on such messages when above 0")
    p.add_argument("--two-requests", type=float, default=0.15, metavar="SHARE",
                   help="of those messages, the share that also ask a second request of another intent")
    p.add_argument("--oos-train", default=str(DEFAULT_OOS_TRAIN) if DEFAULT_OOS_TRAIN.is_file() else None,
                   metavar="FILE", help="requests no intent answers (JSONL or lines of text), learnt as one more class, "
                   f"'{OUT_OF_SCOPE}', that the agent escalates (default: data/out_of_scope/train.jsonl)")
    p.add_argument("--no-oos-class", dest="oos_train", action="store_const", const=None,
                   help="no out-of-scope class: out of scope by the distance and energy score alone")
    p.add_argument("--handover", nargs="+", default=default_handover() or None,
                   help="hand-over messages (JSONL files with text and label) for the learned hand-over detector "
                        "(agent/handover.py; default: data/handover/train.jsonl and whole_messages.jsonl)")
    p.add_argument("--no-handover", dest="handover", action="store_const", const=None,
                   help="no learned hand-over detector: the explicit cues alone")
    p.add_argument("--recalibrate", action="store_true",
                   help="with --init-from: refit the temperature, lexical weight and escalation thresholds on "
                        "the validation data instead of keeping the parent's (only right when the parent's "
                        "encoder has not trained on that data)")
    p.add_argument("--refit", action="store_true",
                   help="after choosing the epochs, calibration and thresholds on validation, train again on "
                        "training and validation data together and ship that (the metrics stay the validated run's)")
    p.add_argument("--no-lexical", dest="lexical", action="store_false",
                   help="no TF-IDF lexical model beside the head (agent/lexical.py): the head's own probabilities")
    p.add_argument("--checkpoints", help="checkpoint directory (default OUT/checkpoints; removed on success)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoints (LoRA steps, computed embeddings)")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--escalate-budget", type=float, default=ESCALATE_BUDGET,
                   help="share of correctly answered validation messages escalation (every reason) may take")
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    if args.data:
        args.train, args.validation = str(Path(args.data) / "train.jsonl"), str(Path(args.data) / "validation.jsonl")
    return args


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


def starting_point(args) -> tuple[str, str | None, str | None, IntentHead | None]:
    """(encoder, LoRA adapter directory, parent version, parent model) that training starts from;
    the last three None without --init-from."""
    if not args.init_from:
        return args.base, None, None, None
    directory = models.resolve("intent", args.init_from, SHIPPED, args.models_dir or Settings.load().models_dir)
    init = IntentHead.load(directory)
    try:
        parent = models.read_version(directory)["id"]
    except AgentError:  # the shipped artefact, or one trained before versions existed
        parent = models.SHIPPED if directory.resolve() == SHIPPED.resolve() else str(directory)
    return init.encoder, init.adapter, parent, init


class Texts:
    """The texts a model is fitted and calibrated on, drawn once with a fixed seed: the training
    queries as they are (and, with ``--messages``, each inside a whole message), the validation
    queries the same way, and validation messages with two requests."""

    def __init__(self, args, train: tuple[list[str], np.ndarray], validation: tuple[list[str], np.ndarray],
                 names: list[str]):
        rng = random.Random(f"{args.seed}:fit")
        builder = MessageBuilder(rng) if args.messages > 0 else None
        self.train = self._both(*train, names, rng, builder)
        self.validation = self._both(*validation, names, rng, builder)
        self.two_requests: list[Drawn] = []
        if builder is not None:
            texts, labels = validation
            answered = [k for k in range(len(texts)) if names[labels[k]] != OUT_OF_SCOPE]
            for i in answered:
                j = rng.choice(answered)
                if labels[j] != labels[i]:
                    self.two_requests.append(draw_text(texts[i], int(labels[i]), names, rng, builder, 1.0, 1.0, 0.0,
                                                       lambda j=j: (texts[j], int(labels[j]))))

    @staticmethod
    def _both(texts, labels, names, rng, builder) -> list[Drawn]:
        out = [Drawn.of(t, int(y)) for t, y in zip(texts, labels)]
        if builder is not None:
            out += [draw_text(t, int(y), names, rng, builder, 1.0, 0.0, 0.0) for t, y in zip(texts, labels)]
        return out


def with_out_of_scope(args, tr_x, tr_y, va_x, va_y):
    """The training and validation examples with the out-of-scope requests of ``--oos-train`` added,
    split the same way (seeded), labelled ``out_of_scope``."""
    if not args.oos_train:
        return tr_x, tr_y, va_x, va_y
    path = Path(args.oos_train)
    if not path.is_file():
        raise AgentError(f"out-of-scope requests not found: {path}")
    texts = [json.loads(line)["text"] if path.suffix == ".jsonl" else line.strip()
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(args.seed).shuffle(texts)
    held = int(round(len(texts) * OOS_VALIDATION_FRACTION))
    return (tr_x + texts[held:], tr_y + [OUT_OF_SCOPE] * (len(texts) - held),
            va_x + texts[:held], va_y + [OUT_OF_SCOPE] * held)


def fit_weights(args, texts: list[str], ids: np.ndarray, names: list[str], frozen: Embedded,
                parent_head: IntentHead | None, init_adapter: str | None, out: Path, checkpoints: Path,
                validation: tuple[list[str], np.ndarray, Embedded] | None = None, chosen: dict | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The head's weight and bias (fitted on ``frozen``: the training texts embedded by the starting
    encoder) and, for ``lora``, the adapter (saved to OUT/adapter), trained on ``texts`` with ``ids``.
    With ``validation`` (texts, ids, embedded), C and the epochs are chosen on it; a refit passes that
    run's details as ``chosen`` instead."""
    known = frozen.labels != IGNORE
    x, y = frozen.vectors[known], frozen.labels[known]
    if args.method == "head" and parent_head is not None:
        weight, bias = anchored_head(x, y, names, parent_head, args.anchor)
        details = {"anchor": args.anchor, "new_intents": sorted(set(names) - set(parent_head.labels))}
    else:
        grid = (chosen["C"],) if chosen else (16.0,) if args.method == "lora" else (4.0, 16.0, 64.0)
        val = validation[2].subset(np.flatnonzero(validation[2].labels != IGNORE)) if validation and validation[2] else None
        weight, bias, c = linear_head(x, y, val.vectors if val else None, val.labels if val else None, grid=grid)
        details = {"C": c}
    if args.method == "lora":
        weight, bias, details["fine_tune"] = fine_tune(
            args, texts, ids, names, *(validation[:2] if validation else (None, None)), weight, bias, out,
            checkpoints, init_adapter, stop_after=chosen["fine_tune"]["best_epoch"] if chosen else None)
    return weight, bias, details


def build_head(args, train: Embedded, weight: np.ndarray, bias: np.ndarray, names: list[str], base: str,
               adapter: str | None, lexical: bool, encoder: SentenceEncoder, handover_examples
               ) -> tuple[IntentHead, dict]:
    """The head around trained weights, uncalibrated: the lexical model, the out-of-scope statistics
    and the hand-over detector, all fitted on the training texts (``train``, embedded by the trained
    encoder). Returns it and the hand-over detector's summary (empty without one)."""
    known = np.flatnonzero(train.labels != IGNORE)
    single = train.subset(known)
    answered = single.subset(np.flatnonzero(np.isin(single.labels, [i for i, n in enumerate(names) if n != OUT_OF_SCOPE])))
    head = IntentHead(labels=names, weight=weight, bias=bias, temperature=1.0, threshold=0.0, encoder=base,
                      metrics={}, adapter=adapter, oos=OutOfScope.fit(answered.vectors, answered.labels),
                      lexical=LexicalModel.fit(single.texts, single.labels) if lexical else None)
    if not handover_examples:
        return head, {}
    head.handover = fit_handover(lambda batch: encoder.encode(batch, progress=True), single.vectors, *handover_examples,
                                 seed=args.seed, framed=args.messages > 0)
    return head, {"handover": handover_summary(args.handover, handover_examples[1], len(single.vectors))}


def copy_calibration(head: IntentHead, source: IntentHead) -> None:
    """Give ``head`` the temperature, lexical weight and escalation thresholds of ``source``."""
    head.temperature, head.threshold = source.temperature, source.threshold
    head.lexical_weight = source.lexical_weight if head.lexical else 0.0
    head.second_threshold, head.second_overlap = source.second_threshold, source.second_overlap
    if source.oos and head.oos:
        head.oos.threshold, head.oos.scale = source.oos.threshold, source.oos.scale


def labelled_file(encoder, path: str, names: list[str]) -> Embedded:
    """A labelled file's texts, as the model reads them, embedded; intents the model lacks are left out."""
    index = {name: i for i, name in enumerate(names)}
    return embed(encoder, [Drawn.of(e.text, index[e.intent]) for e in read_examples(path) if e.intent in index])


def eval_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The model's figures on a labelled file it never saw (``--eval``)."""
    result = evaluate(head, labelled_file(encoder, path, head.labels), head.labels)
    result.pop("_predicted"), result.pop("_truth")
    return result


def check_shares(args) -> None:
    for flag, value in (("--entity-noise", args.entity_noise), ("--messages", args.messages),
                        ("--two-requests", args.two_requests)):
        if not 0 <= value <= 1:
            raise AgentError(f"{flag} is a share of the training examples, between 0 and 1: not {value:g}")


def train(args: argparse.Namespace) -> dict:
    check_shares(args)
    np.random.seed(args.seed)
    started = time.time()
    tr_x, tr_y, va_x, va_y = with_out_of_scope(args, *load_data(args))
    handover_examples = read_handover(args.handover) if args.handover else None
    names = sorted(set(tr_y))
    if len(names) < 2:
        raise AgentError(f"{args.train} needs at least two intents, found {len(names)}")
    index = {lab: i for i, lab in enumerate(names)}
    tr_i, va_i = np.array([index[y] for y in tr_y]), np.array([index[y] for y in va_y])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = Path(args.checkpoints or out / "checkpoints")
    base, init_adapter, parent, parent_head = starting_point(args)
    args.base = base  # what fine_tune loads, and what version.json records
    texts = Texts(args, (tr_x, tr_i), (va_x, va_i), names)

    encoder = SentenceEncoder(base, adapter=init_adapter)
    frozen = Embeddings(encoder, f"{base}|{init_adapter}", checkpoints, args.resume)
    head_only = args.method == "head"
    starting = frozen(texts.train if head_only else [Drawn.of(t, int(y)) for t, y in zip(tr_x, tr_i)])
    val_frozen = frozen(texts.validation) if head_only else None  # lora chooses on its own validation
    weight, bias, details = fit_weights(args, tr_x, tr_i, names, starting, parent_head, init_adapter, out,
                                        checkpoints, validation=(va_x, va_i, val_frozen))
    adapter = "adapter" if args.method == "lora" or init_adapter else None
    if args.method == "lora":
        encoder = SentenceEncoder(base, adapter=str(out / adapter))
        train_e, val_e = embed(encoder, texts.train), embed(encoder, texts.validation)
    else:
        train_e, val_e = starting, val_frozen
        if init_adapter:  # the head is trained on this adapter's embeddings: the artefact carries a copy
            if Path(init_adapter).resolve() != (out / adapter).resolve() and processes.is_main():
                shutil.rmtree(out / adapter, ignore_errors=True)
                shutil.copytree(init_adapter, out / adapter)
        elif (out / "adapter").exists() and processes.is_main():
            shutil.rmtree(out / "adapter")  # a stale adapter would not match this head

    inherit = parent_head is not None and not args.recalibrate
    lexical = args.lexical and not (inherit and parent_head.lexical is None)
    # The hand-over detector comes before the thresholds: its hand-overs count in the escalation budget.
    head, handover = build_head(args, train_e, weight, bias, names, base, adapter, lexical, encoder,
                                handover_examples)
    details |= handover
    one_line = val_e.subset(np.arange(len(va_x)))
    whole = val_e.subset(np.arange(len(va_x), len(val_e.drawn)))
    if inherit:
        copy_calibration(head, parent_head)
        details["calibration"] = f"the parent's ({parent})"
    else:
        calibrate(head, val_e)
        fit_thresholds(head, val_e, args.escalate_budget)
        if texts.two_requests:
            details["requests"] = fit_second_threshold(head, whole, embed(encoder, texts.two_requests))

    validation = evaluate(head, one_line, names)
    truth, predicted = validation.pop("_truth"), validation.pop("_predicted")
    if processes.is_main():
        write_reports(out, names, truth, predicted)
    if texts.validation[len(va_x):]:
        messages = evaluate(head, whole, names)
        details["validation_messages"] = {k: v for k, v in messages.items() if not k.startswith("_") and k != "per_intent"}
    if head.lexical:
        details["lexical"] = {"terms": len(head.lexical.vocabulary), "weight": round(head.lexical_weight, 4)}
    if args.refit:  # the validated model's figures stay the honest ones; the refit is trained on them
        head, encoder = refit(args, details, head, encoder, texts, tr_x, tr_i, va_x, va_i, names, base, adapter,
                              init_adapter, parent_head, out, checkpoints, frozen, handover_examples)
    methods = {"lora": "LoRA fine-tuned encoder + linear head (Trainer)",
               "head": "linear head on frozen encoder (logistic regression)"}
    method = methods[args.method] if "anchor" not in details else "linear head warm-started from the parent's"
    metrics = {"method": method + (f", on the encoder and adapter of {parent}" if parent else "")
               + (", with a TF-IDF lexical model" if head.lexical else "")
               + (", refitted on training and validation data" if args.refit else ""),
               "base": base, "train_file": Path(args.train).name, "train_examples": len(tr_x),
               "temperature": round(head.temperature, 4), "threshold": head.threshold,
               "oos_threshold": head.oos.threshold, "second_threshold": head.second_threshold,
               "escalate_budget": args.escalate_budget, "seed": args.seed, **details, "validation": validation}
    if args.oos:
        metrics["out_of_scope"] = out_of_scope_metrics(head, encoder, args.oos)
    if args.eval:
        metrics["eval"] = eval_metrics(head, encoder, args.eval)
    metrics["train_seconds"] = round(time.time() - started, 1)
    head.metrics = {k: v for k, v in metrics.items() if k not in ("validation", "eval", "selected")}
    head.metrics |= {"validation_accuracy": validation["accuracy"], "validation_macro_f1": validation["macro_f1"]}
    if processes.is_main():
        head.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        summary = {k: validation[k] for k in ("accuracy", "macro_f1", "escalated_fraction", "answered_accuracy")}
        models.write_version(out, "intent", {"validation": summary, "train_seconds": metrics["train_seconds"]},
                             [f for f in (args.train, args.validation) if f],
                             base + (" + LoRA adapter" if adapter else ""),
                             {k: v for k, v in vars(args).items() if k not in ("out", "checkpoints", "resume")}, parent)
        shutil.rmtree(checkpoints, ignore_errors=True)  # only an interrupted run needs them
    processes.wait_for_everyone()
    return metrics


def refit(args, details, head, encoder, texts, tr_x, tr_i, va_x, va_i, names, base, adapter, init_adapter,
          parent_head, out, checkpoints, frozen, handover_examples):
    """Train once more on training and validation data together, for the validated run's epochs, and
    give the result the validated run's calibration; returns (head, encoder)."""
    details["selected"] = {"train_examples": len(tr_x), **({"eval": eval_metrics(head, encoder, args.eval)}
                                                           if args.eval else {})}
    if args.oos:
        details["selected"]["out_of_scope"] = out_of_scope_metrics(head, encoder, args.oos)
    all_x, all_i = tr_x + va_x, np.concatenate([tr_i, va_i])
    refit_started = time.time()
    everything = texts.train + texts.validation
    starting = frozen(everything if args.method == "head" else [Drawn.of(t, int(y)) for t, y in zip(all_x, all_i)])
    weight, bias, chosen = fit_weights(args, all_x, all_i, names, starting, parent_head, init_adapter, out,
                                       checkpoints / "refit", chosen=details)
    if args.method == "lora":
        encoder = SentenceEncoder(base, adapter=str(out / adapter))
        all_e = embed(encoder, everything)
    else:
        all_e = starting
    refitted, handover = build_head(args, all_e, weight, bias, names, base, adapter, head.lexical is not None,
                                    encoder, handover_examples)
    copy_calibration(refitted, head)
    details["refit"] = {"train_examples": len(all_x), "epochs": chosen.get("fine_tune", {}).get("epochs_run"),
                        "seconds": round(time.time() - refit_started, 1), **handover}
    if refitted.lexical:
        details["refit"]["lexical_terms"] = len(refitted.lexical.vocabulary)
    return refitted, encoder


def out_of_scope_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The share of the out-of-scope queries in ``path`` (one a line) that the agent escalates."""
    queries = [q.strip() for q in Path(path).read_text(encoding="utf-8").splitlines() if q.strip()]
    data = embed(encoder, [Drawn.of(q, IGNORE) for q in queries])
    return {"file": Path(path).name, "queries": len(queries),
            "escalated": round(float((escalations(head, data) | handed_over(head, data)).mean()), 4)}


def heldout_metrics(model_dir: str | Path, heldout: str | Path) -> dict:
    """Accuracy and macro-F1 (over the intents the held-out set has) of one model: what promotion compares."""
    from sklearn.metrics import f1_score

    examples = read_examples(heldout)
    truth = [e.intent for e in examples]
    predicted = [p.top[0].intent for p in IntentClassifier(str(model_dir)).classify([e.text for e in examples])]
    correct = np.array([p == t for p, t in zip(predicted, truth)])
    return {"examples": len(truth), "accuracy": round(float(correct.mean()), 4),
            "macro_f1": round(float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro",
                                             zero_division=0)), 4)}


def main(argv=None) -> int:
    args = parse_args(argv)

    def work() -> dict:
        torch.set_num_threads(processes.cpu_threads())
        metrics = train(args)
        v = metrics["validation"]
        return {"out": args.out, "accuracy": v["accuracy"], "macro_f1": v["macro_f1"],
                "escalated_fraction": v["escalated_fraction"], "answered_accuracy": v["answered_accuracy"],
                "out_of_scope_escalated": metrics.get("out_of_scope", {}).get("escalated"),
                "messages_accuracy": metrics.get("validation_messages", {}).get("accuracy"),
                "seconds": metrics["train_seconds"], "version": models.read_version(args.out)["id"]}
    return script.run("finetune.intent", work)


if __name__ == "__main__":
    sys.exit(main())
