"""The intent model's trainable parts: the encoder with its LoRA adapter and the linear head.

``fine_tune`` trains both with the Hugging Face Trainer on the texts ``finetune.intent_data`` draws
each epoch. The loss is the head's cross-entropy on the message (its tokens' mean, as the encoder
was pre-trained) plus, for whole messages, on each part that belongs to a request (that sentence's
tokens' mean, in the context of the whole message): so the model reads the message, and can also
say which sentence asks for what.
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from agent.encoder import SentenceEncoder, mean_pool
from agent.intent import OUT_OF_SCOPE, IntentHead
from finetune import processes
from finetune.intent_data import (IGNORE, Drawn, Embedded, LengthGroupedEpochs, TrainingTexts, collate, embed,
                                  read_requests, written_messages)

PART_LOSS_WEIGHT = 0.5  # the parts' share of the loss beside the message's (default of --part-weight)
LORA_TARGETS = ["query", "key", "value", "dense"]  # every linear layer of the BERT encoder


class PooledClassifier(torch.nn.Module):
    """Encoder, mean pooling (as the encoder was trained), dropout, linear head; for parts, the mean
    over each part's tokens."""

    def __init__(self, encoder, weight: np.ndarray, bias: np.ndarray, part_weight: float = PART_LOSS_WEIGHT):
        super().__init__()
        self.encoder = encoder
        self.part_weight = part_weight
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            self.head.bias.copy_(torch.from_numpy(bias))

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None, part_row=None, part_start=None,
                part_end=None, part_labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.head(self.dropout(mean_pool(hidden, attention_mask)))
        out = {"logits": logits}
        if labels is None:
            return out
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE) if (labels != IGNORE).any() \
            else logits.sum() * 0
        if part_row is not None and len(part_row):
            positions = torch.arange(hidden.shape[1], device=hidden.device)
            inside = ((positions[None, :] >= part_start[:, None]) & (positions[None, :] < part_end[:, None])).long()
            part_logits = self.head(self.dropout(mean_pool(hidden[part_row], inside)))
            loss = loss + self.part_weight * torch.nn.functional.cross_entropy(part_logits, part_labels)
        out["loss"] = loss
        return out


def training_extras(args, names: list[str]) -> list[Drawn]:
    """What training reads every epoch beside the drawn queries: the training half of ``--written`` (whole
    messages people wrote) ``--written-repeat`` times, then the ``--oos-train-only`` requests as they are."""
    out = written_messages(args.written, names) * args.written_repeat if args.written else []
    if args.oos_train_only and OUT_OF_SCOPE in names:
        out += [Drawn.of(text, names.index(OUT_OF_SCOPE)) for text in read_requests(args.oos_train_only)]
    return out


def fine_tune(args, texts: list[str], labels: np.ndarray, names: list[str], val_texts: list[str] | None,
              val_labels: np.ndarray | None, weight: np.ndarray, bias: np.ndarray, out: Path, checkpoints: Path,
              adapter: str | None = None, stop_after: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """LoRA + head fine-tuning with the Trainer (a new adapter, or ``adapter`` trained on); saves the
    adapter to OUT/adapter, returns the head. With validation data, early stopping keeps the best
    epoch (scored on the validation queries as they are and inside whole messages); without (a refit),
    training follows the same learning-rate schedule of ``args.epochs`` and stops after ``stop_after``
    epochs, where the validated run was best. Checkpoints stay in ``checkpoints`` for ``--resume``
    until the whole run is done."""
    from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, set_seed

    class StopAfter(TrainerCallback):
        def on_epoch_end(self, training_args, state, control, **kwargs):
            control.should_training_stop = state.epoch >= stop_after - 1e-6

    class GroupedTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return LengthGroupedEpochs(train_dataset or self.train_dataset, self.args.train_batch_size, self.args.seed)

    def accuracy(p) -> dict:
        known = p.label_ids != IGNORE
        return {"accuracy": float((p.predictions.argmax(-1)[known] == p.label_ids[known]).mean())}

    set_seed(args.seed)
    tokenizer, encoder = _lora_encoder(args, adapter)
    model = PooledClassifier(encoder, weight, bias, args.part_weight)
    validated = val_texts is not None
    shares = {"message_share": args.messages, "two_share": args.two_requests}
    extras = training_extras(args, names)
    trainer = GroupedTrainer(
        model=model, args=_training_arguments(args, len(texts), checkpoints, validated),
        train_dataset=TrainingTexts(texts, labels, names, tokenizer, args.seed, entity_noise=args.entity_noise,
                                    extras=extras, **shares),
        eval_dataset=TrainingTexts(val_texts, val_labels, names, tokenizer, args.seed, both=args.messages > 0,
                                   message_share=0.0, two_share=0.0, entity_noise=0.0) if validated else None,
        data_collator=collate(tokenizer), compute_metrics=accuracy,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience) if validated else StopAfter()])
    resume = args.resume and any(checkpoints.glob("checkpoint-*"))
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs; stdout carries the result
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    if processes.is_main():
        encoder.peft_config["default"].base_model_name_or_path = args.base  # not this machine's path
        encoder.save_pretrained(str(out / "adapter"))
        (out / "adapter" / "README.md").unlink(missing_ok=True)  # peft's blank model card, naming this machine's paths
    processes.wait_for_everyone()  # every process reads the adapter next
    info = {**_run_info(args, trainer, result, validated), **shares,
            "extras_read_per_epoch": len(extras)}
    return (model.head.weight.detach().cpu().numpy(), model.head.bias.detach().cpu().numpy(), info)


def _lora_encoder(args, adapter: str | None):
    """The base encoder with a new LoRA adapter, or with ``adapter`` loaded to train on."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from agent.encoder import load_encoder

    tokenizer, encoder = load_encoder(args.base)
    if adapter:
        return tokenizer, PeftModel.from_pretrained(encoder, adapter, is_trainable=True)
    return tokenizer, get_peft_model(encoder, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.1,
                                                         target_modules=LORA_TARGETS))


def _training_arguments(args, n_texts: int, checkpoints: Path, validated: bool):
    """Linear schedule with 6% warm-up; with validation, evaluate each epoch and keep the best."""
    from transformers import TrainingArguments

    steps_per_epoch = -(-n_texts // args.batch_size)
    return TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128, learning_rate=args.lr, weight_decay=0.01, lr_scheduler_type="linear",
        warmup_steps=int(0.06 * steps_per_epoch * args.epochs), save_strategy="epoch", save_total_limit=2,
        eval_strategy="epoch" if validated else "no", load_best_model_at_end=validated,
        metric_for_best_model="accuracy" if validated else None, greater_is_better=True, logging_steps=50,
        report_to=[], seed=args.seed, data_seed=args.seed, label_names=["labels"],
        remove_unused_columns=False, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        disable_tqdm=False)  # quiet_transformers() would otherwise hide the training progress bar


def _run_info(args, trainer, result, validated: bool) -> dict:
    """What the run did, for the model's metrics: epochs, steps, the validation history, the settings."""
    history = [{k: v for k, v in h.items() if k in ("epoch", "eval_accuracy", "eval_loss")}
               for h in trainer.state.log_history if "eval_accuracy" in h]
    return {"epochs_run": round(trainer.state.epoch, 2),
            "train_runtime_s": round(result.metrics.get("train_runtime", 0), 1),
            "steps": trainer.state.global_step, "processes": processes.count(),
            **({"best_validation_accuracy": trainer.state.best_metric, "history": history,
                # the first epoch with the best score: the one the Trainer keeps (it needs a strict gain)
                "best_epoch": max(history, key=lambda h: h["eval_accuracy"])["epoch"]} if validated else {}),
            "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "targets": LORA_TARGETS},
            "lr": args.lr, "batch_size": args.batch_size, "entity_noise": args.entity_noise,
            "part_loss_weight": args.part_weight}


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
    """Texts embedded (with their parts) by one encoder, kept in the checkpoint directory so a resumed
    run does not recompute them."""

    def __init__(self, encoder: SentenceEncoder, identity: str, checkpoints: Path, resume: bool):
        self.encoder, self.identity, self.checkpoints, self.resume = encoder, identity, checkpoints, resume

    def __call__(self, drawn: list[Drawn]) -> Embedded:
        key = hashlib.sha256("\n".join([self.identity, *(f"{d.text}|{d.spans}" for d in drawn)]).encode()).hexdigest()[:16]
        cached = self.checkpoints / f"embeddings-{key}.npz"
        if self.resume and cached.is_file():
            saved = np.load(cached)
            return Embedded(drawn, saved["vectors"], np.split(saved["parts"], np.cumsum(saved["sizes"])[:-1]))
        data = embed(self.encoder, drawn)
        if processes.is_main():
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            np.savez(cached, vectors=data.vectors, parts=np.concatenate(data.parts),
                     sizes=[len(p) for p in data.parts])
        return data
