"""Train the reply generator: customer message + retrieved passage -> reply body.

    python -m finetune.generator --train data/replies/train.jsonl --out agent/data/generator

Records are JSONL with ``text``, ``passage`` and ``reply`` (``channel`` and ``intent`` optional; see
``finetune.reply_data`` to bootstrap them from the knowledge base, and the learning loop for replies
people wrote or corrected). The base is Whisper's text decoder from the packaged weights by default
(``agent.generator``), or any Hugging Face causal LM or encoder-decoder. With ``--method lora`` (the
default) only LoRA adapters and the layer norms are trained and saved, a few MB; ``full`` saves the
whole model. The Hugging Face Trainer runs with fixed seeds, a checkpoint per epoch (``--resume``
continues), and early stopping on validation loss; at the end, replies are generated greedily for the
validation records and scored (ROUGE-L, chrF, numbers not in the message or passage) into metrics.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agent.generator import (CROSS_ATTENTION_FILE, WHISPER_PREFIX, Generator, GeneratorConfig,
                             context_limit, load_base, prompt)
from agent import model_versions
from agent.promotion import read_records, score_replies
from agent.settings import Settings
from agent.types import AgentError
from finetune import processes, script

DEFAULT_BASE = WHISPER_PREFIX + "tiny.en"
SPOKEN_SENTENCES = 12  # passage sentences spoken to measure Whisper's average cross-attention


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.generator", description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="JSONL records with text, passage and reply")
    p.add_argument("--out", required=True, help="directory for the trained generator")
    p.add_argument("--base", default=DEFAULT_BASE,
                   help=f"{WHISPER_PREFIX}tiny.en (default), {WHISPER_PREFIX}base, or a Hugging Face id or path")
    p.add_argument("--eval", help="validation JSONL (default: a share of --train)")
    p.add_argument("--method", choices=("lora", "full"), default="lora")
    p.add_argument("--lora-r", type=int, default=32)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--patience", type=int, default=1, help="evaluations without improvement before stopping")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-train", type=int, help="use at most this many training records")
    p.add_argument("--max-eval", type=int, help="compute the validation loss on at most this many records")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (default: each epoch)")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--score-records", type=int, default=60, help="validation records to generate and score")
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--checkpoints", help="checkpoint directory (default OUT/checkpoints; removed on success)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args(argv)


def encode(record: dict, tokenizer, layout, limit: int) -> dict | None:
    """Token ids and labels (the reply only; the prompt is context); None when it does not fit."""
    source = layout.encode_prompt(tokenizer, prompt(record["text"], record["passage"], record.get("channel", "email")))
    target = layout.encode_reply(tokenizer, record["reply"])
    if layout.architecture == "seq2seq":
        return {"input_ids": source, "labels": target}
    if limit and len(source) + len(target) > limit:
        return None
    return {"input_ids": source + target, "labels": [-100] * len(source) + target}


def collate(batch: list[dict], pad: int) -> dict:
    def padded(key, value):
        width = max(len(b[key]) for b in batch)
        return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch])

    out = {"input_ids": padded("input_ids", pad), "labels": padded("labels", -100)}
    out["attention_mask"] = (torch.arange(out["input_ids"].shape[1])[None]
                             < torch.tensor([len(b["input_ids"]) for b in batch])[:, None]).long()
    return out


def causal_loss(model, inputs) -> torch.Tensor:
    """Next-token loss on the reply tokens only, projecting to the vocabulary only there.

    The output layer is most of a small LM's cost (51,864 x 384 for Whisper tiny); computing it on
    the prompt positions, whose predictions are never scored, would more than double the step time.
    """
    labels = inputs["labels"]
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1][:, :-1]
    targets = labels[:, 1:]
    scored = targets != -100
    logits = getattr(model, "module", model).get_output_embeddings()(hidden[scored])  # "module": inside DDP
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored])


def whisper_cross_attention(name: str, cache_dir: str, sentences: list[str]) -> np.ndarray:
    """Each Whisper decoder layer's cross-attention output, averaged over real speech.

    ``sentences`` are spoken by the packaged voice and teacher-forced through openai-whisper; the
    result, ``(n_layers, width)``, stands in for the audio the text-only generator never has.
    """
    import whisper

    from agent import packaged_weights
    from channels.audio import resample
    from channels.tts import load_engine

    model = whisper.load_model(packaged_weights.whisper_checkpoint(name, cache_dir), device="cpu")
    tokenizer = whisper.tokenizer.get_tokenizer(model.is_multilingual, language="en", task="transcribe")
    voice = load_engine(Settings.load().replace(tts_engine="piper"), deterministic=True)
    outputs: dict[int, torch.Tensor] = {}
    hooks = [block.cross_attn.register_forward_hook(lambda _m, _i, out, i=i: outputs.__setitem__(i, out[0][0]))
             for i, block in enumerate(model.decoder.blocks)]
    total, count = torch.zeros(len(model.decoder.blocks), model.dims.n_text_state), 0
    for sentence in sentences:
        audio = resample(voice.synthesize(sentence), voice.sample_rate, whisper.audio.SAMPLE_RATE)
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)), model.dims.n_mels)
        ids = torch.tensor([list(tokenizer.sot_sequence_including_notimestamps) + tokenizer.encode(" " + sentence)])
        with torch.no_grad():
            model.decoder(ids, model.encoder(mel[None]))
        total += torch.stack([outputs[i].sum(0) for i in range(len(hooks))])
        count += ids.shape[1]
    for hook in hooks:
        hook.remove()
    return (total / count).numpy()


def train(args: argparse.Namespace) -> dict:
    from transformers import set_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    out = Path(args.out)
    records, validation = _split_records(args)
    cache_dir = Settings.load().cache_dir
    out.mkdir(parents=True, exist_ok=True)
    cross_attention = None
    if args.base.startswith(WHISPER_PREFIX):
        spoken = sorted({r["passage"].split(". ")[0].rstrip(".") + "." for r in records})[:SPOKEN_SENTENCES]
        cross_attention = whisper_cross_attention(args.base[len(WHISPER_PREFIX):], cache_dir, spoken)
        if processes.is_main():
            np.save(out / CROSS_ATTENTION_FILE, cross_attention)
    model, tokenizer, layout = load_base(args.base, cache_dir, cross_attention)
    limit = context_limit(model)
    train_set = [e for r in records if (e := encode(r, tokenizer, layout, limit))]
    eval_set = [e for r in validation if (e := encode(r, tokenizer, layout, limit))]
    if not train_set or not eval_set:
        raise AgentError("no record fits the model's context; shorten the passages or replies")
    if args.method == "lora":
        model = _with_lora(model, layout, args.lora_r)
    checkpoints = Path(args.checkpoints or out / "checkpoints")
    trainer = _trainer(args, model, layout, train_set, eval_set, checkpoints)
    started = time.time()
    resume = args.resume and any(checkpoints.glob("checkpoint-*"))
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs; stdout carries the result
        trainer.train(resume_from_checkpoint=True if resume else None)
    train_seconds = time.time() - started
    eval_loss = trainer.evaluate()["eval_loss"]
    if not processes.is_main():  # the first process writes and scores the model
        return {}

    _save(args, out, trainer.model, tokenizer, layout)
    metrics = {"base": args.base, "method": args.method, "train_records": len(train_set),
               "validation_records": len(eval_set),
               "dropped_too_long": len(records) + len(validation) - len(train_set) - len(eval_set),
               "eval_loss": round(eval_loss, 4), "train_seconds": round(train_seconds),
               "epochs_run": round(trainer.state.epoch, 2), "steps": trainer.state.global_step,
               "processes": processes.count(),
               "validation": score_replies(Generator(str(out), cache_dir), validation[:args.score_records])}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    model_versions.write_version(out, "generator", metrics, [f for f in (args.train, args.eval) if f], args.base,
                         {k: v for k, v in vars(args).items() if k not in ("out", "checkpoints", "resume")})
    shutil.rmtree(checkpoints, ignore_errors=True)
    return metrics


def _split_records(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Training and validation records: the --eval file, or a seeded share held out of --train."""
    records = read_records(args.train)
    if args.eval:
        validation = read_records(args.eval)
    else:
        random.Random(args.seed).shuffle(records)
        n_val = max(1, int(len(records) * args.validation_fraction))
        validation, records = records[:n_val], records[n_val:]
    if args.max_train:
        records = records[:args.max_train]
    if args.max_eval:
        validation = validation[:args.max_eval]
    return records, validation


def _with_lora(model, layout, rank: int):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(
        r=rank, lora_alpha=rank, lora_dropout=0.05, target_modules=_linear_names(model),
        modules_to_save=_norm_names(model), fan_in_fan_out=_uses_conv1d(model),
        task_type="CAUSAL_LM" if layout.architecture == "causal" else "SEQ_2_SEQ_LM"))


def _trainer(args: argparse.Namespace, model, layout, train_set: list, eval_set: list, checkpoints: Path):
    """A Trainer that evaluates and checkpoints once per epoch (or --eval-every) and stops early."""
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

    steps_per_epoch = max(1, len(train_set) // args.batch_size)
    every = args.eval_every or steps_per_epoch
    training_args = TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.lr, num_train_epochs=args.epochs,
        warmup_steps=min(100, steps_per_epoch // 10), weight_decay=0.01, eval_strategy="steps", eval_steps=every,
        save_strategy="steps", save_steps=every, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False, logging_steps=max(1, every // 10),
        report_to=[], seed=args.seed, data_seed=args.seed, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, remove_unused_columns=False, prediction_loss_only=True, disable_tqdm=False)

    class ReplyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if layout.architecture == "seq2seq":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = causal_loss(model, inputs)
            return (loss, (loss,)) if return_outputs else loss  # the Trainer slices off the loss

    return ReplyTrainer(model=model, args=training_args, train_dataset=train_set, eval_dataset=eval_set,
                        data_collator=lambda b: collate(b, layout.eos),
                        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience)])


def _save(args: argparse.Namespace, out: Path, model, tokenizer, layout) -> None:
    """The adapter (LoRA) or the whole model, and the config that says how to load it."""
    if args.method == "lora":
        shutil.rmtree(out / "adapter", ignore_errors=True)
        model.save_pretrained(str(out / "adapter"))
    else:
        model.save_pretrained(str(out / "model"))
        tokenizer.save_pretrained(str(out / "model"))
    GeneratorConfig(base=args.base, architecture=layout.architecture, adapter=args.method == "lora",
                    max_new_tokens=args.max_new_tokens).save(out)


def _linear_names(model) -> list[str]:
    """Suffixes of every linear layer except the output projection (tied to the embedding)."""
    from transformers.pytorch_utils import Conv1D

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D)) and "lm_head" not in name}
    return sorted(names)


def _uses_conv1d(model) -> bool:  # GPT-2 stores linear weights transposed; LoRA must know
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def _norm_names(model) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.LayerNorm)})


def main(argv=None) -> int:
    args = parse_args(argv)
    return script.run("finetune.generator", lambda: train(args))


if __name__ == "__main__":
    raise SystemExit(main())
