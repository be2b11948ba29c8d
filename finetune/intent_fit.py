"""The fitting steps of ``finetune.intent``: the texts fitted on, the head's weights (and the LoRA adapter),
the head around them, and the refit on training and validation data together."""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.encoder import SentenceEncoder
from agent.intent import OUT_OF_SCOPE, IntentHead, OutOfScope
from agent.lexical import LexicalModel
from agent.types import AgentError
from finetune.handover import fit as fit_handover, summary as handover_summary
from finetune.intent_data import IGNORE, Drawn, Embedded, draw_text, embed, read_requests
from finetune.intent_model import Embeddings, anchored_head, fine_tune, linear_head
from finetune.intent_report import eval_metrics, out_of_scope_metrics
from finetune.messages import MessageBuilder

OOS_VALIDATION_FRACTION = 0.15  # of --oos-train, held out with the validation queries


class Texts:
    """The texts a model is fitted and calibrated on, drawn once with a fixed seed: the training
    queries as they are (and, with ``--messages``, each inside a whole message), the validation
    queries the same way, and validation messages with two requests."""

    def __init__(self, args, train: tuple[list[str], np.ndarray], validation: tuple[list[str], np.ndarray],
                 names: list[str]):
        rng = random.Random(f"{args.seed}:fit")
        builder = MessageBuilder(rng) if args.messages > 0 else None
        held_out = MessageBuilder(rng, held_out=True) if args.messages > 0 else None
        self.train = self._both(*train, names, rng, builder)
        self.validation = self._both(*validation, names, rng, held_out)
        self.two_requests: list[Drawn] = []
        if held_out is not None:
            texts, labels = validation
            answered = [k for k in range(len(texts)) if names[labels[k]] != OUT_OF_SCOPE]
            for i in answered:
                j = rng.choice(answered)
                if labels[j] != labels[i]:
                    self.two_requests.append(draw_text(texts[i], int(labels[i]), names, rng, held_out, 1.0, 1.0, 0.0,
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
    texts = read_requests(args.oos_train)
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
    """Give ``head`` the temperature, lexical weight, escalation thresholds and second-request scorer of ``source``."""
    head.temperature, head.threshold = source.temperature, source.threshold
    head.lexical_weight = source.lexical_weight if head.lexical else 0.0
    head.second_requests = source.second_requests
    if source.oos and head.oos:
        head.oos.threshold, head.oos.scale = source.oos.threshold, source.oos.scale


@dataclass
class Run:
    """What one training run fits on and starts from, as ``finetune.intent.prepare`` reads it."""

    args: argparse.Namespace
    names: list[str]  # the intents, in column order
    tr_x: list[str]
    tr_i: np.ndarray
    va_x: list[str]
    va_i: np.ndarray
    texts: Texts
    base: str  # the encoder
    init_adapter: str | None  # the LoRA adapter training starts from (--init-from)
    parent: str | None  # the version trained from
    parent_head: IntentHead | None
    out: Path
    checkpoints: Path
    frozen: Embeddings  # the starting encoder's embeddings, cached in the checkpoints
    handover_examples: tuple | None  # read_handover's, for the learned hand-over detector
    adapter: str | None = None  # the artefact's adapter directory, relative to it, once fitted


def refit(run: Run, details: dict, head: IntentHead, encoder: SentenceEncoder) -> tuple[IntentHead, SentenceEncoder]:
    """Train once more on training and validation data together, for the validated run's epochs, and
    give the result the validated run's calibration; returns (head, encoder)."""
    args = run.args
    details["selected"] = {"train_examples": len(run.tr_x), **({"eval": eval_metrics(head, encoder, args.eval)}
                                                               if args.eval else {})}
    if args.oos:
        details["selected"]["out_of_scope"] = out_of_scope_metrics(head, encoder, args.oos)
    all_x, all_i = run.tr_x + run.va_x, np.concatenate([run.tr_i, run.va_i])
    refit_started = time.time()
    everything = run.texts.train + run.texts.validation
    starting = run.frozen(everything if args.method == "head" else [Drawn.of(t, int(y)) for t, y in zip(all_x, all_i)])
    weight, bias, chosen = fit_weights(args, all_x, all_i, run.names, starting, run.parent_head, run.init_adapter,
                                       run.out, run.checkpoints / "refit", chosen=details)
    if args.method == "lora":
        encoder = SentenceEncoder(run.base, adapter=str(run.out / run.adapter))
        all_e = embed(encoder, everything)
    else:
        all_e = starting
    refitted, handover = build_head(args, all_e, weight, bias, run.names, run.base, run.adapter,
                                    head.lexical is not None, encoder, run.handover_examples)
    copy_calibration(refitted, head)
    details["refit"] = {"train_examples": len(all_x), "epochs": chosen.get("fine_tune", {}).get("epochs_run"),
                        "seconds": round(time.time() - refit_started, 1), **handover}
    if refitted.lexical:
        details["refit"]["lexical_terms"] = len(refitted.lexical.vocabulary)
    return refitted, encoder
