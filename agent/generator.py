"""The reply generator: a small language model that rewrites a retrieved, approved passage into a reply.

It reads the customer's message and the passage, and writes the body of the reply (the part between
the greeting and the closing, which the composer frames). Because the passage is in its input, a
knowledge-base edit reaches its drafts without retraining. Its drafts are checked by ``agent.guards``;
a draft that fails falls back to the composer.

Bases (``--base`` of ``finetune.generator``, recorded in the model's ``generator.json``):

* ``whisper-decoder:tiny.en`` / ``whisper-decoder:base`` (offline default): Whisper's pretrained text
  decoder, read from the packaged CTranslate2 weights and rebuilt as a GPT-2 language model. The two
  are the same architecture (pre-norm blocks, learned positions, GELU MLP, output tied to the token
  embedding) except for Whisper's cross-attention to audio. That is replaced by its average output
  on real speech, one vector per layer folded into the self-attention's output bias (so the model
  stays a plain GPT-2): on reply records this takes the untrained loss from 10.0 to 3.4 nats per
  token, where dropping cross-attention outright leaves the blocks far from what they were trained
  on. The vectors are measured by ``finetune.generator`` and saved with the model
  (``cross_attention.npy``). The vocabulary is GPT-2's byte-level BPE, cased, so names, amounts and
  references are copied exactly.
* any Hugging Face causal LM (GPT-2 style) or encoder-decoder (T5, BART) id or local path.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import model_versions, packaged_weights
from .types import AgentError, first_line

DEFAULT_DIR = Path(__file__).parent / "data" / "generator"
WHISPER_PREFIX = "whisper-decoder:"
CONFIG_FILE = "generator.json"
CROSS_ATTENTION_FILE = "cross_attention.npy"


@dataclass
class GeneratorConfig:
    """What a trained generator is, saved beside its weights."""

    base: str  # "whisper-decoder:tiny.en", or a Hugging Face id or path
    architecture: str  # "causal" or "seq2seq"
    adapter: bool  # LoRA adapter in adapter/ (on top of the base) rather than full weights in model/
    max_new_tokens: int = 192

    def save(self, directory: Path) -> None:
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "GeneratorConfig":
        try:
            return cls(**json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")))
        except OSError:
            raise AgentError(f"{directory} is not a trained generator: it has no {CONFIG_FILE}") from None
        except (ValueError, TypeError) as exc:
            raise AgentError(f"{directory / CONFIG_FILE} is damaged: {exc}") from None


def prompt(text: str, passage: str, channel: str) -> str:
    """The model's input: who asked what, on which channel, and the approved answer to work from."""
    return f"Channel: {channel}. Customer: {' '.join(text.split())} Approved answer: {passage}"


# Whisper's decoder was trained with earlier text after <|startofprev|> and the transcript after
# <|startoftranscript|>; keeping that layout lets the fine-tune start from behaviour it already has.
_WHISPER_PROMPT_START = ["<|startofprev|>"]
_WHISPER_REPLY_START = {"en": ["<|startoftranscript|>", "<|notimestamps|>"],
                        "multilingual": ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]}


@dataclass
class Layout:
    """How a prompt and a reply become token ids for one kind of base model."""

    architecture: str
    prompt_start: list[int]
    reply_start: list[int]
    eos: int

    def encode_prompt(self, tokenizer, text: str) -> list[int]:
        ids = tokenizer.encode(" " + text, add_special_tokens=False)
        return self.prompt_start + ids + (self.reply_start if self.architecture == "causal" else [self.eos])

    def encode_reply(self, tokenizer, reply: str) -> list[int]:
        return tokenizer.encode(" " + reply, add_special_tokens=False) + [self.eos]


def whisper_decoder_lm(name: str, cache_dir: str | os.PathLike, cross_attention=None):
    """``(GPT2LMHeadModel, tokenizer, layout)`` built from the Whisper model ``name``'s text decoder.

    ``cross_attention``: an ``(n_layers, width)`` array, each layer's average cross-attention output,
    added where that output used to join the residual stream (see the module's docstring).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from .whisper_weights import read_model_bin, to_openai

    ct2 = Path(packaged_weights.whisper_ct2(name, cache_dir))
    if not (ct2 / "model.bin").is_file():
        raise AgentError(f"'{name}' is not a local Whisper model: whisper-decoder bases are 'tiny.en', 'base' "
                         "or a CTranslate2 Whisper directory")
    _, _, variables = read_model_bin(ct2 / "model.bin")
    dims, sd = to_openai(variables)
    config = GPT2Config(vocab_size=dims["n_vocab"], n_positions=dims["n_text_ctx"], n_embd=dims["n_text_state"],
                        n_layer=dims["n_text_layer"], n_head=dims["n_text_head"], activation_function="gelu",
                        layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                        # Whisper was trained without dropout; GPT-2's default 0.1 would disturb every block.
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    state = {"transformer.wte.weight": t(sd["decoder.token_embedding.weight"]),
             "transformer.wpe.weight": t(sd["decoder.positional_embedding"]),
             "transformer.ln_f.weight": t(sd["decoder.ln.weight"]), "transformer.ln_f.bias": t(sd["decoder.ln.bias"])}
    for i in range(dims["n_text_layer"]):
        src, dst = f"decoder.blocks.{i}", f"transformer.h.{i}"
        attn = f"{src}.attn"
        # GPT-2's Conv1D stores weights as (in, out); q, k and v are fused along the output axis.
        state[f"{dst}.attn.c_attn.weight"] = t(np.concatenate(
            [sd[f"{attn}.query.weight"], sd[f"{attn}.key.weight"], sd[f"{attn}.value.weight"]]).T)
        state[f"{dst}.attn.c_attn.bias"] = t(np.concatenate(
            [sd[f"{attn}.query.bias"], np.zeros_like(sd[f"{attn}.query.bias"]), sd[f"{attn}.value.bias"]]))
        state[f"{dst}.attn.c_proj.weight"] = t(sd[f"{attn}.out.weight"].T)
        state[f"{dst}.attn.c_proj.bias"] = t(sd[f"{attn}.out.bias"] + (0 if cross_attention is None else cross_attention[i]))
        state[f"{dst}.ln_1.weight"], state[f"{dst}.ln_1.bias"] = t(sd[f"{attn}_ln.weight"]), t(sd[f"{attn}_ln.bias"])
        state[f"{dst}.ln_2.weight"], state[f"{dst}.ln_2.bias"] = t(sd[f"{src}.mlp_ln.weight"]), t(sd[f"{src}.mlp_ln.bias"])
        state[f"{dst}.mlp.c_fc.weight"], state[f"{dst}.mlp.c_fc.bias"] = t(sd[f"{src}.mlp.0.weight"].T), t(sd[f"{src}.mlp.0.bias"])
        state[f"{dst}.mlp.c_proj.weight"] = t(sd[f"{src}.mlp.2.weight"].T)
        state[f"{dst}.mlp.c_proj.bias"] = t(sd[f"{src}.mlp.2.bias"])
    model = GPT2LMHeadModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith(("attn.bias", "attn.masked_bias", "lm_head.weight"))]:
        raise AgentError(f"Whisper decoder {name} does not map onto GPT-2: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(ct2 / "tokenizer.json"))
    ids = lambda tokens: tokenizer.convert_tokens_to_ids(tokens)  # noqa: E731
    reply_start = _WHISPER_REPLY_START["multilingual" if dims["n_vocab"] >= 51865 else "en"]
    layout = Layout("causal", ids(_WHISPER_PROMPT_START), ids(reply_start), ids("<|endoftext|>"))
    return model, tokenizer, layout


def load_base(base: str, cache_dir: str | os.PathLike, cross_attention=None):
    """``(model, tokenizer, layout)`` for a base named as in ``GeneratorConfig.base``."""
    if base.startswith(WHISPER_PREFIX):
        return whisper_decoder_lm(base[len(WHISPER_PREFIX):], cache_dir, cross_attention)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = auto.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise AgentError(f"generator base '{base}' could not be loaded ({type(exc).__name__}: "
                         f"{first_line(exc)}); offline bases: {WHISPER_PREFIX}tiny.en, "
                         f"{WHISPER_PREFIX}base") from None
    eos = tokenizer.eos_token_id
    if eos is None:
        raise AgentError(f"generator base '{base}' has no end-of-sequence token")
    if config.is_encoder_decoder:
        return model, tokenizer, Layout("seq2seq", [], [], eos)
    # A plain causal LM: the prompt ends with a marker that the reply follows.
    return model, tokenizer, Layout("causal", [], tokenizer.encode("\nReply:", add_special_tokens=False), eos)


def context_limit(model) -> int:
    """How many positions ``model`` has (0: no fixed limit)."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0) or 0


class Generator:
    """A trained generator loaded for drafting: ``draft(text, passage, channel)`` returns the reply body."""

    def __init__(self, model: str = "default", cache_dir: str | os.PathLike = ".",
                 models_dir: str | os.PathLike | None = None, quantize_output: bool = True):
        """``model``: a directory, or "default": the promoted version in ``models_dir``, else the shipped one.

        ``quantize_output``: int8 weights for the output layer (see ``_int8_output_layer``)."""
        import torch

        directory = model_versions.resolve("generator", model, DEFAULT_DIR, models_dir)
        self.config = GeneratorConfig.load(directory)
        if self.config.adapter:
            from peft import PeftModel

            folded = directory / CROSS_ATTENTION_FILE
            base, self.tokenizer, self.layout = load_base(self.config.base, cache_dir,
                                                          np.load(folded) if folded.is_file() else None)
            try:
                self.model = PeftModel.from_pretrained(base, str(directory / "adapter")).merge_and_unload()
            except (OSError, ValueError, RuntimeError) as exc:
                raise AgentError(f"generator adapter in {directory} could not be loaded: {exc}") from None
        else:
            self.model, self.tokenizer, self.layout = load_base(str(directory / "model"), cache_dir)
        self.model.eval()
        if quantize_output:
            self.model = _int8_output_layer(self.model)
        self.context = context_limit(self.model)
        self._torch = torch

    def draft(self, text: str, passage: str, channel: str) -> str:
        torch = self._torch
        ids = self.layout.encode_prompt(self.tokenizer, prompt(text, passage, channel))
        if self.context and len(ids) + self.config.max_new_tokens > self.context:
            raise AgentError(f"message too long for the generator ({len(ids)} prompt tokens, limit "
                             f"{self.context - self.config.max_new_tokens})")
        with torch.inference_mode():
            out = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      max_new_tokens=self.config.max_new_tokens, do_sample=False, num_beams=1,
                                      eos_token_id=self.layout.eos, pad_token_id=self.layout.eos)
        new = out[0] if self.layout.architecture == "seq2seq" else out[0][len(ids):]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()


def _int8_output_layer(model):
    """``model`` with its vocabulary projection in int8 (dynamic quantisation), on CPU.

    Drafting one token reads the whole output layer (51,864 x 384 floats for Whisper tiny, 80 MB),
    which made it most of the time per token: measured on this machine, a draft took 1.26 s with
    float32 and 0.69 s with int8, with the same 15 of 15 drafts token for token. The blocks stay
    float32 (they are small).
    """
    import warnings

    import torch

    quantize = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantize is None or not hasattr(model, "lm_head"):
        return model
    with warnings.catch_warnings():  # torch points to torchao for new code; this API is what 2.x ships
        warnings.simplefilter("ignore")
        return quantize.quantize_dynamic(model, {"lm_head"}, dtype=torch.qint8)
