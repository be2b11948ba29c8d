"""Refit an intent model's escalation thresholds and second-request scorer, without retraining it.

    python -m finetune.thresholds --model agent/data/intent --escalate-budget 0.005

The validation texts are rebuilt as the training run built them (the same split and seed, the queries
as they are and inside whole messages: ``finetune.intent.Texts``), embedded with the model's own
encoder and adapter, and ``finetune.calibration.fit_thresholds`` sets the low-confidence and
out-of-scope thresholds so that they escalate at most the budget of correctly answered validation
messages. A model trained on whole messages also gets its second-request scorer refitted
(``finetune.calibration.fit_second_requests``, on the same validation messages, one- and two-request).
The model's config.json and metrics.json are updated in place; nothing else changes.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from agent.encoder import SentenceEncoder
from agent.intent import OUT_OF_SCOPE, IntentHead, resolve
from finetune import script
from finetune.calibration import evaluate, fit_second_requests, fit_thresholds
from finetune.intent import DEFAULT_OOS_TRAIN, DEFAULT_TRAIN, ESCALATE_BUDGET
from finetune.intent_fit import Texts, with_out_of_scope
from finetune.intent_data import embed, load_data


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.thresholds", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="intent model directory ('default': the one the agent uses)")
    p.add_argument("--escalate-budget", type=float, default=ESCALATE_BUDGET,
                   help="share of correctly answered validation messages the two thresholds may escalate")
    p.add_argument("--train", default=str(DEFAULT_TRAIN), help="the model's training data (its validation split is used)")
    p.add_argument("--oos-train", default=str(DEFAULT_OOS_TRAIN), help="the model's out-of-scope requests")
    p.add_argument("--validation", help="labelled validation file, if the model was trained with one")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=13, help="the training run's seed")
    return p.parse_args(argv)


def refit(args: argparse.Namespace) -> dict:
    directory = resolve(args.model)
    head = IntentHead.load(directory)
    metrics_file = directory / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    args.messages = metrics.get("fine_tune", {}).get("message_share", 0.0)
    args.oos_train = args.oos_train if OUT_OF_SCOPE in head.labels else None
    tr_x, tr_y, va_x, va_y = with_out_of_scope(args, *load_data(args))
    index = {label: i for i, label in enumerate(head.labels)}
    texts = Texts(args, (tr_x, np.array([index[y] for y in tr_y])), (va_x, np.array([index[y] for y in va_y])),
                  head.labels)
    encoder = SentenceEncoder(head.encoder, adapter=head.adapter)
    validation = embed(encoder, texts.validation)
    fit_thresholds(head, validation, args.escalate_budget)
    if texts.two_requests:
        whole = validation.subset(np.arange(len(va_x), len(validation.drawn)))
        metrics["requests"] = fit_second_requests(head, whole, embed(encoder, texts.two_requests))
        metrics.pop("second_threshold", None)  # older models kept a single threshold here
    head.save(directory)
    one_line = validation.subset(np.arange(len(va_x)))
    figures = {k: v for k, v in evaluate(head, one_line, head.labels).items() if not k.startswith("_") and k != "per_intent"}
    metrics |= {"threshold": head.threshold, "oos_threshold": head.oos.threshold,
                "escalate_budget": args.escalate_budget}
    metrics.setdefault("validation", {}).update(figures)
    metrics_file.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return {"model": str(directory), "threshold": head.threshold, "oos_threshold": head.oos.threshold,
            "escalate_budget": args.escalate_budget, **{k: figures[k] for k in ("escalated_fraction", "answered_accuracy")}}


def main(argv=None) -> int:
    args = parse_args(argv)
    return script.run("finetune.thresholds", lambda: refit(args))


if __name__ == "__main__":
    sys.exit(main())
