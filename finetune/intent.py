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
a TF-IDF logistic regression on the training texts (``agent/lexical.py``; ``--no-lexical``
leaves it out); then a temperature and the lexical model's weight, fitted together on validation
(calibrated probabilities), out-of-scope statistics
(class means and a tied covariance of training embeddings) and two escalation thresholds. The
budget (``--escalate-budget``) is the share of correctly answered validation messages that
escalation may take, for every reason the agent has: what the customer's words hand to a person
(a person asked for, anger, a legal threat; ``agent.sentiment``) is counted first, and the two
thresholds share the rest equally. Writes the artefact plus metrics.json, report.txt,
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
import contextlib
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agent import models
from agent.encoder import MAX_TOKENS, SentenceEncoder, mean_pool
from agent.intent import DEFAULT_DIR, IntentClassifier, IntentHead, OutOfScope
from agent.lexical import LexicalModel
from agent.sentiment import handover_reason, sentiment
from agent.settings import Settings
from agent.types import AgentError
from finetune import processes, script
from finetune.augment import add_entity_noise
from finetune.data import read_examples
from finetune.handover import fit as fit_handover, read_handover, summary as handover_summary

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO / "data" / "banking77" / "train.csv"
DEFAULT_OOS = REPO / "data" / "out_of_scope" / "queries.txt"
DEFAULT_HANDOVER = REPO / "data" / "handover" / "train.jsonl"
ESCALATE_BUDGET = 0.015  # share of correctly answered validation messages escalation may take
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
    p.add_argument("--handover", default=str(DEFAULT_HANDOVER) if DEFAULT_HANDOVER.is_file() else None,
                   help="hand-over messages (JSONL with text and label) for the learned hand-over detector "
                        "(agent/handover.py)")
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


def fit_calibration(logits: np.ndarray, labels: np.ndarray, lexical: np.ndarray | None = None
                    ) -> tuple[float, float]:
    """(temperature, lexical weight) minimising validation negative log-likelihood: temperature
    scaling (Guo et al., 2017) of the head's logits, with the lexical model's log-probabilities
    (``lexical``, if given) added at the weight that predicts validation best."""
    from scipy.optimize import minimize

    rows = np.arange(len(labels))
    extra = np.zeros_like(logits) if lexical is None else lexical

    def nll(params: np.ndarray) -> float:
        z = params[0] * logits + params[1] * extra
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(axis=1))).mean())
    bounds = [(0.05, 20.0), (0.0, 0.0 if lexical is None else 5.0)]  # 1/temperature, lexical weight
    best = minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=bounds).x
    return 1.0 / float(best[0]), float(best[1])


def evaluate(head: IntentHead, embeddings: np.ndarray, labels: list[str], texts: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    probs = head.probabilities(embeddings, texts)
    predicted = [head.labels[i] for i in probs.argmax(axis=1)]
    escalated = escalations(head, embeddings, texts, probs) | handed_over(head, embeddings, texts)
    correct = np.array([p == t for p, t in zip(predicted, labels)])
    p, r, f, n = precision_recall_fscore_support(labels, predicted, labels=head.labels, zero_division=0)
    return {
        "examples": len(labels),
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=head.labels, average="macro", zero_division=0)), 4),
        "escalated_fraction": round(float(escalated.mean()), 4),
        "answered_accuracy": round(float(correct[~escalated].mean()) if (~escalated).any() else 0.0, 4),
        "correct_and_answered": round(float((correct & ~escalated).mean()), 4),
        "per_intent": {lab: {"precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(c), 4),
                             "support": int(d)} for lab, a, b, c, d in zip(head.labels, p, r, f, n)},
        "_predicted": predicted,
    }


def escalations(head: IntentHead, embeddings: np.ndarray, texts: list[str], probs: np.ndarray | None = None
                ) -> np.ndarray:
    """What the classifier escalates: unsure, or out of scope."""
    probs = head.probabilities(embeddings, texts) if probs is None else probs
    unsure = probs.max(axis=1) < head.threshold
    return unsure | (head.out_of_scope_scores(embeddings) > head.oos.threshold) if head.oos else unsure


def handed_over(head: IntentHead, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
    """What the customer's own words hand to a person, whatever the intent (the agent's other reasons):
    the cues, and the head's hand-over model if it has one."""
    learned = head.handover.per_message(embeddings) if head.handover else [None] * len(texts)
    return np.array([handover_reason(t, sentiment(t), p) is not None for t, p in zip(texts, learned)], dtype=bool)


def fit_thresholds(head: IntentHead, embeddings: np.ndarray, labels: np.ndarray, texts: list[str],
                   budget: float, standardise: bool = True) -> None:
    """Set both escalation thresholds on validation data, so that with the hand-overs the customer's
    words cause, escalation takes at most ``budget`` of the correctly answered messages: what the
    hand-overs leave is split evenly between low confidence and out of scope. ``standardise=False``
    keeps the head's out-of-scope scale as it is (None: the distance alone, as bench/intent.py compares)."""
    probs = head.probabilities(embeddings, texts)
    correct = probs.argmax(axis=1) == labels
    if not correct.any():
        raise AgentError("no validation message is classified correctly: cannot choose escalation thresholds")
    half = max(budget - float(handed_over(head, embeddings, texts)[correct].mean()), 0.0) / 2
    # Sample quantiles (not interpolated), rounded outwards: each threshold takes no more than its half.
    low = float(np.quantile(probs.max(axis=1)[correct], half, method="lower"))
    if standardise:
        head.oos.fit_scale(embeddings[correct], head.calibrated_logits(embeddings[correct]))
    far = float(np.quantile(head.out_of_scope_scores(embeddings)[correct], 1 - half, method="higher"))
    head.threshold, head.oos.threshold = math.floor(low * 1e4) / 1e4, math.ceil(far * 1e4) / 1e4


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


def linear_head(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None, val_y: np.ndarray | None,
                grid=(4.0, 16.0, 64.0)) -> tuple[np.ndarray, np.ndarray, float]:
    """Logistic regression with its regularisation chosen on validation: (weight, bias, C). Without
    validation data (a refit), the first value of ``grid``."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=3000).fit(train_x, train_y)
        weight, bias = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
        if val_x is None:
            return weight, bias, c
        acc = float((model.predict(val_x) == val_y).mean())
        print(f"linear head C={c:g}: validation accuracy {acc:.4f}", file=sys.stderr)
        if best is None or acc > best[0]:
            best = (acc, weight, bias, c)
    return best[1], best[2], best[3]


def fine_tune(args, texts: list[str], labels: np.ndarray, val_texts: list[str] | None, val_labels: np.ndarray | None,
              weight: np.ndarray, bias: np.ndarray, out: Path, checkpoints: Path, adapter: str | None = None,
              stop_after: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """LoRA + head fine-tuning with the Trainer (a new adapter, or ``adapter`` trained on); saves the
    adapter to OUT/adapter, returns the head. With validation data, early stopping keeps the best
    epoch; without (a refit), training follows the same learning-rate schedule of ``args.epochs``
    and stops after ``stop_after`` epochs, where the validated run was best. Checkpoints stay in
    ``checkpoints`` for ``--resume`` until the whole run is done."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import (DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainerCallback,
                              TrainingArguments, set_seed)

    from agent.encoder import load_encoder

    class StopAfter(TrainerCallback):
        def on_epoch_end(self, training_args, state, control, **kwargs):
            control.should_training_stop = state.epoch >= stop_after - 1e-6

    set_seed(args.seed)
    tokenizer, encoder = load_encoder(args.base)
    if adapter:
        encoder = PeftModel.from_pretrained(encoder, adapter, is_trainable=True)
    else:
        encoder = get_peft_model(encoder, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.1,
                                                     target_modules=["query", "key", "value", "dense"]))
    model = PooledClassifier(encoder, weight, bias)

    steps_per_epoch = -(-len(texts) // args.batch_size)
    validated = val_texts is not None
    training = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128, learning_rate=args.lr, weight_decay=0.01, lr_scheduler_type="linear",
        warmup_steps=int(0.06 * steps_per_epoch * args.epochs), save_strategy="epoch", save_total_limit=2,
        eval_strategy="epoch" if validated else "no", load_best_model_at_end=validated,
        metric_for_best_model="accuracy" if validated else None, greater_is_better=True, logging_steps=50,
        report_to=[], seed=args.seed, data_seed=args.seed,
        remove_unused_columns=False, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        disable_tqdm=False)  # quiet_transformers() would otherwise hide the training progress bar
    class GroupedTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return LengthGroupedEpochs(train_dataset or self.train_dataset, self.args.train_batch_size, self.args.seed)

    trainer = GroupedTrainer(
        model=model, args=training,
        train_dataset=NoisyExamples(texts, labels, tokenizer, args.entity_noise, args.seed),
        eval_dataset=NoisyExamples(val_texts, val_labels, tokenizer, 0.0, args.seed) if validated else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience) if validated else StopAfter()])
    resume = args.resume and any(checkpoints.glob("checkpoint-*"))
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs; stdout carries the result
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    if processes.is_main():
        encoder.peft_config["default"].base_model_name_or_path = args.base  # not this machine's path
        encoder.save_pretrained(str(out / "adapter"))
        (out / "adapter" / "README.md").unlink(missing_ok=True)  # peft's blank model card, naming this machine's paths
    processes.wait_for_everyone()  # every process reads the adapter next
    history = [{k: v for k, v in h.items() if k in ("epoch", "eval_accuracy", "eval_loss")}
               for h in trainer.state.log_history if "eval_accuracy" in h]
    info = {"epochs_run": round(trainer.state.epoch, 2), "train_runtime_s": round(result.metrics.get("train_runtime", 0), 1),
            "steps": trainer.state.global_step, "processes": processes.count(),
            **({"best_validation_accuracy": trainer.state.best_metric, "history": history,
                # the first epoch with the best score: the one the Trainer keeps (it needs a strict gain)
                "best_epoch": max(history, key=lambda h: h["eval_accuracy"])["epoch"]} if validated else {}),
            "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "targets": ["query", "key", "value", "dense"]},
            "lr": args.lr, "batch_size": args.batch_size, "entity_noise": args.entity_noise}
    return (model.head.weight.detach().cpu().numpy(), model.head.bias.detach().cpu().numpy(), info)


class NoisyExamples(torch.utils.data.Dataset):
    """Tokenized examples, a share of them with customer details added (``finetune.augment``), drawn
    afresh for each epoch (``draw``) from the seed and the epoch: every epoch sees each query both ways
    in a different mix, and a resumed run sees the same draws. With share 0 (validation), the texts as
    they are."""

    def __init__(self, texts: list[str], labels: np.ndarray, tokenizer, share: float, seed: int):
        self.texts, self.labels, self.tokenizer, self.share, self.seed = texts, labels, tokenizer, share, seed
        self.epoch = None
        self.draw(0)

    def draw(self, epoch: int) -> np.ndarray:
        """Choose and tokenize this epoch's texts (unless they are the ones drawn last); returns their
        lengths in tokens."""
        if epoch != self.epoch:
            rng = random.Random(f"{self.seed}:{epoch}")
            texts = [add_entity_noise(t, rng) if rng.random() < self.share else t for t in self.texts]
            self.input, self.epoch = self.tokenizer(texts, truncation=True, max_length=MAX_TOKENS), epoch
        return np.array([len(ids) for ids in self.input["input_ids"]])

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.input.items()}, "labels": int(self.labels[i])}


class LengthGroupedEpochs(torch.utils.data.Sampler):
    """Training order: batches of examples of similar length, in random order. Each epoch it has the
    dataset draw that epoch's texts, shuffles them, sorts each run of ``group`` batches by length and
    shuffles the batches. Random batches padded every example to 2.5 times its length on average
    (Banking77 with details added: 26 tokens a query, 66 a padded one); grouped, 27.

    Like the Trainer's own ``group_by_length``, but it sorts by the lengths of the texts this epoch
    actually trains on, which the details change, and each epoch depends only on the seed and the
    epoch number (the Trainer calls ``set_epoch``)."""

    def __init__(self, examples: NoisyExamples, batch_size: int, seed: int, group: int = 50):
        self.examples, self.batch_size, self.seed, self.group = examples, batch_size, seed, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self):
        lengths = self.examples.draw(self.epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1  # a loader that never calls set_epoch still gets a new order each epoch
        order, run = rng.permutation(len(lengths)), self.group * self.batch_size
        batches = []
        for start in range(0, len(order), run):
            chunk = order[start:start + run]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # Only the last batch can be short; it stays last, or the loader would split later batches.
        full = len(batches) - (len(batches[-1]) < self.batch_size) if batches else 0
        shuffled = [batches[i] for i in rng.permutation(full)] + batches[full:]
        return iter(np.concatenate(shuffled).tolist() if shuffled else [])


class PooledClassifier(torch.nn.Module):
    """Encoder, mean pooling (as the encoder was trained), dropout, linear head."""

    def __init__(self, encoder, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            self.head.bias.copy_(torch.from_numpy(bias))

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.head(self.dropout(mean_pool(hidden, attention_mask)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


def load_data(args) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train texts, train labels, validation texts, validation labels)."""
    from sklearn.model_selection import train_test_split

    examples = read_examples(args.train)
    texts, labels = [e.text for e in examples], [e.intent for e in examples]
    if args.validation:
        held = read_examples(args.validation)
        only = sorted({e.intent for e in held} - set(labels))
        if only:
            raise AgentError(f"intents only in {args.validation}, none in {args.train}: {', '.join(only)}")
        return texts, labels, [e.text for e in held], [e.intent for e in held]
    try:
        tr_x, va_x, tr_y, va_y = train_test_split(texts, labels, test_size=args.validation_fraction,
                                                  stratify=labels, random_state=args.seed)
    except ValueError as exc:
        raise AgentError(f"cannot make a stratified validation split: {exc}") from None
    return tr_x, tr_y, va_x, va_y


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


def anchored_head(train_x: np.ndarray, train_y: np.ndarray, labels: list[str], parent: IntentHead,
                  anchor: float) -> tuple[np.ndarray, np.ndarray]:
    """A head warm-started from ``parent``: its intents keep their rows, held near them by a penalty
    ``anchor * |w - w_parent|^2`` (so old intents are answered as before), and new intents get rows
    of their own. A head refitted from scratch on the adapter's embeddings loses about a point on the
    old intents, because the parent's head was trained jointly with the adapter."""
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y).long()
    w0, b0 = torch.zeros(len(labels), x.shape[1]), torch.zeros(len(labels))
    old = torch.zeros(len(labels), dtype=torch.bool)
    for j, label in enumerate(parent.labels):
        if label in labels:
            i = labels.index(label)
            w0[i], b0[i], old[i] = torch.from_numpy(parent.weight[j]), float(parent.bias[j]), True
    if old.any():
        b0[~old] = b0[old].mean()
    weight, bias = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        value = (torch.nn.functional.cross_entropy(x @ weight.T + bias, y)
                 + anchor * (((weight - w0)[old] ** 2).sum() + ((bias - b0)[old] ** 2).sum())
                 + 1e-5 * (weight[~old] ** 2).sum())  # new rows: a little weight decay, no anchor
        value.backward()
        return value

    optimiser.step(loss)
    return weight.detach().numpy(), bias.detach().numpy()


class Embeddings:
    """Sentence embeddings, kept in the checkpoint directory so a resumed run does not recompute them."""

    def __init__(self, encoder: SentenceEncoder, identity: str, checkpoints: Path, resume: bool):
        self.encoder, self.identity, self.checkpoints, self.resume = encoder, identity, checkpoints, resume

    def __call__(self, texts: list[str]) -> np.ndarray:
        key = hashlib.sha256("\n".join([self.identity, *texts]).encode()).hexdigest()[:16]
        cached = self.checkpoints / f"embeddings-{key}.npy"
        if self.resume and cached.is_file():
            return np.load(cached)
        embeddings = self.encoder.encode(texts, progress=True)
        if processes.is_main():
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            np.save(cached, embeddings)
        return embeddings


def fit_weights(args, texts: list[str], ids: np.ndarray, frozen: np.ndarray, label_set: list[str],
                parent_head: IntentHead | None, init_adapter: str | None, out: Path, checkpoints: Path,
                validation: tuple[list[str], np.ndarray, np.ndarray] | None = None, chosen: dict | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The head's weight and bias on these examples (``frozen``: their embeddings by the starting
    encoder) and, for ``lora``, the adapter (saved to OUT/adapter). With ``validation`` (texts, ids,
    frozen embeddings), C and the epochs are chosen on it; a refit passes that run's details as
    ``chosen`` instead."""
    if args.method == "head" and parent_head is not None:
        weight, bias = anchored_head(frozen, ids, label_set, parent_head, args.anchor)
        details = {"anchor": args.anchor, "new_intents": sorted(set(label_set) - set(parent_head.labels))}
    else:
        grid = (chosen["C"],) if chosen else (16.0,) if args.method == "lora" else (4.0, 16.0, 64.0)
        val_x, val_y = (validation[2], validation[1]) if validation else (None, None)
        weight, bias, c = linear_head(frozen, ids, val_x, val_y, grid=grid)
        details = {"C": c}
    if args.method == "lora":
        weight, bias, details["fine_tune"] = fine_tune(
            args, texts, ids, *(validation[:2] if validation else (None, None)), weight, bias, out, checkpoints,
            init_adapter, stop_after=chosen["fine_tune"]["best_epoch"] if chosen else None)
    return weight, bias, details


def build_head(args, texts: list[str], ids: np.ndarray, embeddings: np.ndarray, weight: np.ndarray,
               bias: np.ndarray, label_set: list[str], base: str, adapter: str | None, lexical: bool,
               encoder: SentenceEncoder, handover_examples) -> tuple[IntentHead, dict]:
    """The head around trained weights, uncalibrated: the lexical model, the out-of-scope statistics
    and the hand-over detector, all fitted on these training examples. Returns it and the
    hand-over detector's summary (empty without one)."""
    head = IntentHead(labels=label_set, weight=weight, bias=bias, temperature=1.0, threshold=0.0,
                      encoder=base, metrics={}, adapter=adapter, oos=OutOfScope.fit(embeddings, ids, len(label_set)),
                      lexical=LexicalModel.fit(texts, ids) if lexical else None)
    if not handover_examples:
        return head, {}
    head.handover = fit_handover(lambda batch: encoder.encode(batch, progress=True), embeddings, *handover_examples)
    return head, {"handover": handover_summary(args.handover, handover_examples[1], len(embeddings))}


def copy_calibration(head: IntentHead, source: IntentHead) -> None:
    """Give ``head`` the temperature, lexical weight and escalation thresholds of ``source``."""
    head.temperature, head.threshold = source.temperature, source.threshold
    head.lexical_weight = source.lexical_weight if head.lexical else 0.0
    if source.oos and head.oos:
        head.oos.threshold, head.oos.scale = source.oos.threshold, source.oos.scale


def eval_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The model's figures on a labelled file it never saw (``--eval``)."""
    held = read_examples(path)
    texts = [e.text for e in held]
    result = evaluate(head, encoder.encode(texts, progress=True), [e.intent for e in held], texts)
    result.pop("_predicted")
    return result


def train(args: argparse.Namespace) -> dict:
    if not 0 <= args.entity_noise <= 1:
        raise AgentError(f"--entity-noise is a share of the training examples, between 0 and 1: not {args.entity_noise:g}")
    np.random.seed(args.seed)
    started = time.time()
    tr_x, tr_y, va_x, va_y = load_data(args)
    handover_examples = read_handover(args.handover) if args.handover else None
    label_set = sorted(set(tr_y))
    if len(label_set) < 2:
        raise AgentError(f"{args.train} needs at least two intents, found {len(label_set)}")
    index = {lab: i for i, lab in enumerate(label_set)}
    tr_i, va_i = np.array([index[y] for y in tr_y]), np.array([index[y] for y in va_y])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = Path(args.checkpoints or out / "checkpoints")
    base, init_adapter, parent, parent_head = starting_point(args)
    args.base = base  # what fine_tune loads, and what version.json records

    encoder = SentenceEncoder(base, adapter=init_adapter)
    embed = Embeddings(encoder, f"{base}|{init_adapter}", checkpoints, args.resume)
    frozen_tr, frozen_va = embed(tr_x), embed(va_x)
    weight, bias, details = fit_weights(args, tr_x, tr_i, frozen_tr, label_set, parent_head, init_adapter, out,
                                        checkpoints, validation=(va_x, va_i, frozen_va))
    adapter = None
    if args.method == "lora":
        adapter = "adapter"
        encoder = SentenceEncoder(base, adapter=str(out / adapter))
        tr_e, va_e = encoder.encode(tr_x, progress=True), encoder.encode(va_x, progress=True)
    else:
        tr_e, va_e = frozen_tr, frozen_va
        if init_adapter:  # the head is trained on this adapter's embeddings: the artefact carries a copy
            adapter = "adapter"
            if Path(init_adapter).resolve() != (out / adapter).resolve() and processes.is_main():
                shutil.rmtree(out / adapter, ignore_errors=True)
                shutil.copytree(init_adapter, out / adapter)
        elif (out / "adapter").exists() and processes.is_main():
            shutil.rmtree(out / "adapter")  # a stale adapter would not match this head

    inherit = parent_head is not None and not args.recalibrate
    lexical = args.lexical and not (inherit and parent_head.lexical is None)
    # The hand-over detector comes before the thresholds: its hand-overs count in the escalation budget.
    head, handover = build_head(args, tr_x, tr_i, tr_e, weight, bias, label_set, base, adapter, lexical, encoder,
                                handover_examples)
    details |= handover
    if inherit:
        copy_calibration(head, parent_head)
        details["calibration"] = f"the parent's ({parent})"
    else:
        head.temperature, head.lexical_weight = fit_calibration(
            head.logits(va_e), va_i, head.lexical.log_probabilities(va_x) if head.lexical else None)
        fit_thresholds(head, va_e, va_i, va_x, args.escalate_budget)

    validation = evaluate(head, va_e, va_y, va_x)
    predicted = validation.pop("_predicted")
    if processes.is_main():
        write_reports(out, label_set, va_y, predicted)
    if head.lexical:
        details["lexical"] = {"terms": len(head.lexical.vocabulary), "weight": round(head.lexical_weight, 4)}
    if args.refit:  # the validated model's figures stay the honest ones; the refit is trained on them
        details["selected"] = {"train_examples": len(tr_x), **({"eval": eval_metrics(head, encoder, args.eval)}
                                                               if args.eval else {})}
        if args.oos:
            details["selected"]["out_of_scope"] = out_of_scope_metrics(head, encoder, args.oos)
        all_x, all_i = tr_x + va_x, np.concatenate([tr_i, va_i])
        refit_started = time.time()
        weight, bias, chosen = fit_weights(args, all_x, all_i, np.concatenate([frozen_tr, frozen_va]), label_set,
                                           parent_head, init_adapter, out, checkpoints / "refit", chosen=details)
        if args.method == "lora":
            encoder = SentenceEncoder(base, adapter=str(out / adapter))
            all_e = encoder.encode(all_x, progress=True)
        else:
            all_e = np.concatenate([tr_e, va_e])
        refitted, handover = build_head(args, all_x, all_i, all_e, weight, bias, label_set, base, adapter,
                                        head.lexical is not None, encoder, handover_examples)
        copy_calibration(refitted, head)
        head = refitted
        details["refit"] = {"train_examples": len(all_x), "epochs": chosen.get("fine_tune", {}).get("epochs_run"),
                            "seconds": round(time.time() - refit_started, 1), **handover}
        if head.lexical:
            details["refit"]["lexical_terms"] = len(head.lexical.vocabulary)
    methods = {"lora": "LoRA fine-tuned encoder + linear head (Trainer)",
               "head": "linear head on frozen encoder (logistic regression)"}
    method = methods[args.method] if "anchor" not in details else "linear head warm-started from the parent's"
    metrics = {"method": method + (f", on the encoder and adapter of {parent}" if parent else "")
               + (", with a TF-IDF lexical model" if head.lexical else "")
               + (", refitted on training and validation data" if args.refit else ""),
               "base": base, "train_file": Path(args.train).name, "train_examples": len(tr_x),
               "temperature": round(head.temperature, 4), "threshold": head.threshold,
               "oos_threshold": head.oos.threshold, "escalate_budget": args.escalate_budget, "seed": args.seed,
               **details, "validation": validation}
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


def out_of_scope_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The share of the out-of-scope queries in ``path`` (one a line) that the agent escalates."""
    queries = [q.strip() for q in Path(path).read_text(encoding="utf-8").splitlines() if q.strip()]
    embedded = encoder.encode(queries)
    return {"file": Path(path).name, "queries": len(queries),
            "escalated": round(float((escalations(head, embedded, queries) | handed_over(head, embedded, queries)).mean()), 4)}


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
                "seconds": metrics["train_seconds"], "version": models.read_version(args.out)["id"]}
    return script.run("finetune.intent", work)


if __name__ == "__main__":
    sys.exit(main())
