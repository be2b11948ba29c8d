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
agent/model_versions.py).

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
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agent import model_versions
from agent.encoder import SentenceEncoder
from agent.intent import DEFAULT_DIR, OUT_OF_SCOPE, IntentHead
from agent.settings import Settings
from agent.types import AgentError
from finetune import processes, script
from finetune.calibration import calibrate, evaluate, fit_second_requests, fit_thresholds
from finetune.handover import default_train as default_handover, read_handover
from finetune.intent_data import Drawn, Embedded, embed, load_data, read_requests, written_messages
from finetune.intent_fit import Run, Texts, build_head, copy_calibration, fit_weights, refit, with_out_of_scope
from finetune.intent_model import PART_LOSS_WEIGHT, Embeddings
from finetune.intent_report import eval_metrics, out_of_scope_metrics, write_reports

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO / "data" / "banking77" / "train.csv"
DEFAULT_OOS = REPO / "data" / "out_of_scope" / "queries.txt"
DEFAULT_OOS_TRAIN = REPO / "data" / "out_of_scope" / "train.jsonl"
DEFAULT_OOS_TRAIN_ONLY = REPO / "data" / "out_of_scope" / "near_domain.jsonl"
DEFAULT_WRITTEN = REPO / "data" / "messages" / "written_requests.jsonl"
# Share of correctly answered validation messages the classifier's thresholds may escalate. Validation
# messages are built like the training ones; messages people write escalate several times more often.
ESCALATE_BUDGET = 0.005
SHIPPED = DEFAULT_DIR


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
    p.add_argument("--part-weight", type=float, default=PART_LOSS_WEIGHT, metavar="W",
                   help="with --messages: the weight of each request sentence's own loss (read in the context of "
                        "its message) beside the message's; it teaches the model which sentence asks what")
    p.add_argument("--oos-train", default=str(DEFAULT_OOS_TRAIN) if DEFAULT_OOS_TRAIN.is_file() else None,
                   metavar="FILE", help="requests no intent answers (JSONL or lines of text), learnt as one more class, "
                   f"'{OUT_OF_SCOPE}', that the agent escalates (default: data/out_of_scope/train.jsonl)")
    p.add_argument("--no-oos-class", dest="oos_train", action="store_const", const=None,
                   help="no out-of-scope class: out of scope by the distance and energy score alone")
    p.add_argument("--oos-train-only", default=str(DEFAULT_OOS_TRAIN_ONLY) if DEFAULT_OOS_TRAIN_ONLY.is_file() else None,
                   metavar="FILE", help="with --method lora: more out-of-scope requests, read as they are every epoch and "
                   "never validated on (default: data/out_of_scope/near_domain.jsonl: other organisations' cards, "
                   "accounts and documents)")
    p.add_argument("--no-oos-train-only", dest="oos_train_only", action="store_const", const=None,
                   help="no out-of-scope requests beyond --oos-train")
    p.add_argument("--written", default=str(DEFAULT_WRITTEN) if DEFAULT_WRITTEN.is_file() else None, metavar="FILE",
                   help="with --method lora: whole messages people wrote, each request labelled with its sentence "
                        "(JSONL: text, kind, requests), read every epoch beside the built ones; every fourth is "
                        "held out (default: data/messages/written_requests.jsonl)")
    p.add_argument("--no-written", dest="written", action="store_const", const=None,
                   help="no written messages: built ones only")
    p.add_argument("--written-repeat", type=int, default=3, metavar="N",
                   help="how many times each written message is read per epoch")
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


def starting_point(args) -> tuple[str, str | None, str | None, IntentHead | None]:
    """(encoder, LoRA adapter directory, parent version, parent model) that training starts from;
    the last three None without --init-from."""
    if not args.init_from:
        return args.base, None, None, None
    directory = model_versions.resolve("intent", args.init_from, SHIPPED, args.models_dir or Settings.load().models_dir)
    init = IntentHead.load(directory)
    try:
        parent = model_versions.read_version(directory)["id"]
    except AgentError:  # the shipped artefact, or one trained before versions existed
        parent = model_versions.SHIPPED if directory.resolve() == SHIPPED.resolve() else str(directory)
    return init.encoder, init.adapter, parent, init


def check_shares(args) -> None:
    for flag, value in (("--entity-noise", args.entity_noise), ("--messages", args.messages),
                        ("--two-requests", args.two_requests)):
        if not 0 <= value <= 1:
            raise AgentError(f"{flag} is a share of the training examples, between 0 and 1: not {value:g}")
    if args.part_weight < 0:
        raise AgentError(f"--part-weight is a weight of the loss, 0 or more: not {args.part_weight:g}")
    if args.written_repeat < 0:
        raise AgentError(f"--written-repeat is a number of readings per epoch, 0 or more: not {args.written_repeat}")


def prepare(args: argparse.Namespace) -> Run:
    """Read the data and the starting point, and draw the texts fitted on."""
    check_shares(args)
    np.random.seed(args.seed)
    tr_x, tr_y, va_x, va_y = with_out_of_scope(args, *load_data(args))
    names = sorted(set(tr_y))
    if len(names) < 2:
        raise AgentError(f"{args.train} needs at least two intents, found {len(names)}")
    index = {lab: i for i, lab in enumerate(names)}
    tr_i, va_i = np.array([index[y] for y in tr_y]), np.array([index[y] for y in va_y])
    if args.written:
        written_messages(args.written, names)  # a missing file or a bad line stops the run here, before training
    if args.oos_train_only:
        read_requests(args.oos_train_only)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = Path(args.checkpoints or out / "checkpoints")
    base, init_adapter, parent, parent_head = starting_point(args)
    args.base = base  # what fine_tune loads, and what version.json records
    frozen = Embeddings(SentenceEncoder(base, adapter=init_adapter), f"{base}|{init_adapter}", checkpoints, args.resume)
    return Run(args, names, tr_x, tr_i, va_x, va_i, Texts(args, (tr_x, tr_i), (va_x, va_i), names), base, init_adapter,
               parent, parent_head, out, checkpoints, frozen, read_handover(args.handover) if args.handover else None)


def fit_encoder(run: Run) -> tuple[np.ndarray, np.ndarray, dict, SentenceEncoder, Embedded, Embedded]:
    """The head's weights and, for ``lora``, the adapter; returns them with the fitting details, the encoder
    they go with and the training and validation texts embedded by it."""
    args, out = run.args, run.out
    head_only = args.method == "head"
    starting = run.frozen(run.texts.train if head_only else [Drawn.of(t, int(y)) for t, y in zip(run.tr_x, run.tr_i)])
    val_frozen = run.frozen(run.texts.validation) if head_only else None  # lora chooses on its own validation
    weight, bias, details = fit_weights(args, run.tr_x, run.tr_i, run.names, starting, run.parent_head,
                                        run.init_adapter, out, run.checkpoints,
                                        validation=(run.va_x, run.va_i, val_frozen))
    run.adapter = "adapter" if args.method == "lora" or run.init_adapter else None
    if args.method == "lora":
        encoder = SentenceEncoder(run.base, adapter=str(out / run.adapter))
        return weight, bias, details, encoder, embed(encoder, run.texts.train), embed(encoder, run.texts.validation)
    if run.init_adapter:  # the head is trained on this adapter's embeddings: the artefact carries a copy
        if Path(run.init_adapter).resolve() != (out / run.adapter).resolve() and processes.is_main():
            shutil.rmtree(out / run.adapter, ignore_errors=True)
            shutil.copytree(run.init_adapter, out / run.adapter)
    elif (out / "adapter").exists() and processes.is_main():
        shutil.rmtree(out / "adapter")  # a stale adapter would not match this head
    return weight, bias, details, run.frozen.encoder, starting, val_frozen


def train(args: argparse.Namespace) -> dict:
    started = time.time()
    run = prepare(args)
    weight, bias, details, encoder, train_e, val_e = fit_encoder(run)
    inherit = run.parent_head is not None and not args.recalibrate
    lexical = args.lexical and not (inherit and run.parent_head.lexical is None)
    # The hand-over detector comes before the thresholds: its hand-overs count in the escalation budget.
    head, handover = build_head(args, train_e, weight, bias, run.names, run.base, run.adapter, lexical, encoder,
                                run.handover_examples)
    details |= handover
    one_line = val_e.subset(np.arange(len(run.va_x)))
    whole = val_e.subset(np.arange(len(run.va_x), len(val_e.drawn)))
    if inherit:
        copy_calibration(head, run.parent_head)
        details["calibration"] = f"the parent's ({run.parent})"
    else:
        calibrate(head, val_e)
        fit_thresholds(head, val_e, args.escalate_budget)
        if run.texts.two_requests:
            details["requests"] = fit_second_requests(head, whole, embed(encoder, run.texts.two_requests))
    validation = evaluate(head, one_line, run.names)
    truth, predicted = validation.pop("_truth"), validation.pop("_predicted")
    if processes.is_main():
        write_reports(run.out, run.names, truth, predicted)
    if run.texts.validation[len(run.va_x):]:
        messages = evaluate(head, whole, run.names)
        details["validation_messages"] = {k: v for k, v in messages.items() if not k.startswith("_") and k != "per_intent"}
    if head.lexical:
        details["lexical"] = {"terms": len(head.lexical.vocabulary), "weight": round(head.lexical_weight, 4)}
    if args.refit:  # the validated model's figures stay the honest ones; the refit is trained on them
        head, encoder = refit(run, details, head, encoder)
    metrics = run_metrics(run, head, encoder, details, validation)
    metrics["train_seconds"] = round(time.time() - started, 1)
    save(run, head, metrics)
    return metrics


def run_metrics(run: Run, head: IntentHead, encoder: SentenceEncoder, details: dict, validation: dict) -> dict:
    """metrics.json: how the model was trained, its calibration, and its figures on validation and the
    ``--oos`` and ``--eval`` files."""
    args = run.args
    methods = {"lora": "LoRA fine-tuned encoder + linear head (Trainer)",
               "head": "linear head on frozen encoder (logistic regression)"}
    method = methods[args.method] if "anchor" not in details else "linear head warm-started from the parent's"
    metrics = {"method": method + (f", on the encoder and adapter of {run.parent}" if run.parent else "")
               + (", with a TF-IDF lexical model" if head.lexical else "")
               + (", refitted on training and validation data" if args.refit else ""),
               "base": run.base, "train_file": Path(args.train).name, "train_examples": len(run.tr_x),
               "temperature": round(head.temperature, 4), "threshold": head.threshold,
               "oos_threshold": head.oos.threshold,
               "escalate_budget": args.escalate_budget, "seed": args.seed, **details, "validation": validation}
    if args.oos:
        metrics["out_of_scope"] = out_of_scope_metrics(head, encoder, args.oos)
    if args.eval:
        metrics["eval"] = eval_metrics(head, encoder, args.eval)
    return metrics


def save(run: Run, head: IntentHead, metrics: dict) -> None:
    """Write the artefact, metrics.json and version.json (from the first process only)."""
    args, out, validation = run.args, run.out, metrics["validation"]
    head.metrics = {k: v for k, v in metrics.items() if k not in ("validation", "eval", "selected")}
    head.metrics |= {"validation_accuracy": validation["accuracy"], "validation_macro_f1": validation["macro_f1"]}
    if processes.is_main():
        head.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        summary = {k: validation[k] for k in ("accuracy", "macro_f1", "escalated_fraction", "answered_accuracy")}
        model_versions.write_version(out, "intent", {"validation": summary, "train_seconds": metrics["train_seconds"]},
                                     [f for f in (args.train, args.validation) if f],
                                     run.base + (" + LoRA adapter" if run.adapter else ""),
                                     {k: v for k, v in vars(args).items() if k not in ("out", "checkpoints", "resume")},
                                     run.parent)
        shutil.rmtree(run.checkpoints, ignore_errors=True)  # only an interrupted run needs them
    processes.wait_for_everyone()


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
                "seconds": metrics["train_seconds"], "version": model_versions.read_version(args.out)["id"]}
    return script.run("finetune.intent", work)


if __name__ == "__main__":
    sys.exit(main())
