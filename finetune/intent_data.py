"""What the intent model trains and is calibrated on: one-line queries and whole messages built around them.

Each epoch draws its texts afresh from the seed and the epoch (``TrainingTexts.draw``): a share of
the queries are wrapped in a whole message (``finetune.messages``; some with a second request of
another intent), and of the rest a share get customer details added (``finetune.augment``). Every
text is read as the agent reads it (``agent.sentences.read``: greetings, sign-offs, quoted history
and the agent's turns left out), and each part that belongs to a request carries that request's
intent, so the model learns the message (its pooled tokens) and its parts (each sentence's pooled
tokens, in context). A two-request message teaches only its parts.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.encoder import MAX_TOKENS
from agent.intent import OUT_OF_SCOPE, askers
from agent.labelled import read_examples
from agent.sentences import read
from agent.types import AgentError
from finetune.augment import add_entity_noise
from finetune.messages import HELD_OUT_EVERY, MessageBuilder

IGNORE = -100  # a message with no single intent, or a part that belongs to no request


@dataclass
class Drawn:
    """One training text as the model reads it (``agent.sentences.read``), with its label, its parts
    (character spans in ``text``), each part's label and whether it may ask a request of its own
    (``agent.intent.askers``)."""

    text: str
    label: int  # IGNORE for a message with two requests
    spans: list[tuple[int, int]]
    part_labels: list[int]  # IGNORE for a part that belongs to no request
    askers: list[bool]

    @classmethod
    def of(cls, text: str, label: int) -> "Drawn":
        """A text with one intent; its parts are not labelled (the message is)."""
        reading = read(text)
        if not reading.text:
            return cls(text, label, [(0, len(text))], [IGNORE], [True])
        return cls(reading.text, label, reading.spans, [IGNORE] * len(reading.spans), askers(reading).tolist())


def draw_text(query: str, label: int, names: list[str], rng: random.Random, builder: MessageBuilder,
              message_share: float, two_share: float, entity_noise: float, partner=None) -> Drawn:
    """One query as drawn for an epoch: inside a whole message (with ``partner()``'s query as a second
    request, with probability ``two_share``), with details added, or as it is."""
    if rng.random() < message_share:
        requests = [(query, names[label])]
        if partner is not None and rng.random() < two_share:
            other, other_label = partner()
            requests.insert(rng.randrange(2), (other, names[other_label]))
        built = builder.build(requests)
        return labelled_reading(built.text, built.labelled, names, label if len(requests) == 1 else IGNORE)
    return Drawn.of(add_entity_noise(query, rng) if rng.random() < entity_noise else query, label)


def labelled_reading(text: str, labelled: list[tuple[int, int, str]], names: list[str], label: int) -> Drawn:
    """``text`` as the agent reads it; each part takes the intent of the labelled span it overlaps most."""
    reading = read(text)
    index = {name: i for i, name in enumerate(names)}
    part_labels = []
    for sentence in reading.parts:
        overlaps = [(min(sentence.end, e) - max(sentence.start, s), intent) for s, e, intent in labelled]
        best = max(overlaps, default=(0, None))
        part_labels.append(index[best[1]] if best[0] > 0 else IGNORE)
    return Drawn(reading.text, label, reading.spans, part_labels, askers(reading).tolist())


def written_messages(path: str | Path, names: list[str], held_out: bool = False) -> list[Drawn]:
    """Whole messages people wrote, each request labelled with the sentence that asks it (JSON lines:
    ``text``, ``kind`` ordinary or two_requests, ``requests``: [{intent, sentence}], the main first), read
    as the agent reads them; each part takes the intent of the request sentence it overlaps. A sentence
    that asks two requests labels no part. Every ``HELD_OUT_EVERY``-th message is for validation
    (``held_out``), the rest for training; messages asking an intent outside ``names`` are left out."""
    if not Path(path).is_file():
        raise AgentError(f"written messages not found: {path}")
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
            text = m["text"]
            spans = [(start, start + len(r["sentence"]), r["intent"])
                     for r in m["requests"] for start in [text.index(r["sentence"])]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AgentError(f"{path}:{number}: needs 'text' and 'requests' (each an 'intent' and a 'sentence' "
                             "found in the text)") from None
        if not spans:
            raise AgentError(f"{path}:{number}: no requests")
        if (number % HELD_OUT_EVERY == 0) != held_out or not {intent for _, _, intent in spans} <= set(names):
            continue  # held out, or about an intent this model does not learn
        asked = Counter(span[:2] for span in spans)
        label = names.index(spans[0][2]) if len(spans) == 1 else IGNORE
        out.append(labelled_reading(text, [x for x in spans if asked[x[:2]] == 1], names, label))
    return out


def read_requests(file: str) -> list[str]:
    """The requests of a JSONL file (``text``) or a text file (one a line)."""
    path = Path(file)
    if not path.is_file():
        raise AgentError(f"out-of-scope requests not found: {path}")
    return [json.loads(line)["text"] if path.suffix == ".jsonl" else line.strip()
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Embedded:
    """Texts as the model reads them, with their embeddings and their parts' embeddings."""

    drawn: list[Drawn]
    vectors: np.ndarray  # (texts, dim)
    parts: list[np.ndarray]  # per text: (parts, dim)

    @property
    def texts(self) -> list[str]:
        return [d.text for d in self.drawn]

    @property
    def labels(self) -> np.ndarray:
        return np.array([d.label for d in self.drawn])

    def part_texts(self, i: int) -> list[str]:
        return [self.drawn[i].text[s:e] for s, e in self.drawn[i].spans]

    def subset(self, rows: np.ndarray) -> "Embedded":
        return Embedded([self.drawn[i] for i in rows], self.vectors[rows], [self.parts[i] for i in rows])


def embed(encoder, drawn: list[Drawn]) -> Embedded:
    vectors, parts = encoder.encode_parts([d.text for d in drawn], [d.spans for d in drawn], progress=True)
    return Embedded(drawn, vectors, parts)


class TrainingTexts(torch.utils.data.Dataset):
    """Tokenized texts drawn per epoch (``draw``). ``both=True`` (validation): every query once as it
    is and once inside a message, the same every time."""

    def __init__(self, texts: list[str], labels: np.ndarray, names: list[str], tokenizer, seed: int,
                 message_share: float = 0.5, two_share: float = 0.1, entity_noise: float = 0.5, both: bool = False,
                 extras: list[Drawn] = ()):
        self.texts, self.labels, self.names, self.tokenizer, self.seed = texts, labels, names, tokenizer, seed
        self.message_share, self.two_share, self.entity_noise, self.both = message_share, two_share, entity_noise, both
        self.extras = list(extras)  # read every epoch as they are (``finetune.intent_model.training_extras``)
        self.epoch = None
        self.draw(0)

    def draws(self, epoch: int) -> list[Drawn]:
        rng = random.Random(f"{self.seed}:{epoch}")
        builder = MessageBuilder(rng, held_out=self.both)
        by_label: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            if self.names[int(label)] != OUT_OF_SCOPE:  # a second request is one the agent answers
                by_label.setdefault(int(label), []).append(i)

        def partner_for(label: int):
            def partner():
                other = rng.choice([k for k in by_label if k != label])
                j = rng.choice(by_label[other])
                return self.texts[j], other
            return partner
        out = []
        for query, label in zip(self.texts, self.labels):
            label = int(label)
            if self.both:
                out.append(Drawn.of(query, label))
                out.append(draw_text(query, label, self.names, rng, builder, 1.0, self.two_share, 0.0,
                                     partner_for(label) if label in by_label else None))
            else:
                partner = partner_for(label) if label in by_label else None
                out.append(draw_text(query, label, self.names, rng, builder, self.message_share, self.two_share,
                                     self.entity_noise, partner))
        return out + self.extras

    def draw(self, epoch: int) -> np.ndarray:
        """Choose and tokenize this epoch's texts (unless they are the ones drawn last; a validation set
        is drawn once); returns their lengths in tokens."""
        epoch = 0 if self.both else epoch
        if epoch != self.epoch:
            self.drawn = self.draws(epoch)
            self.input = self.tokenizer([d.text for d in self.drawn], truncation=True, max_length=MAX_TOKENS,
                                        return_offsets_mapping=True)
            self.epoch = epoch
        return np.array([len(ids) for ids in self.input["input_ids"]])

    def __len__(self) -> int:
        return len(self.drawn)

    def __getitem__(self, i: int) -> dict:
        offsets = self.input["offset_mapping"][i]
        parts = []
        for (start, end), label in zip(self.drawn[i].spans, self.drawn[i].part_labels):
            tokens = [t for t, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
            if tokens and label != IGNORE:
                parts.append((tokens[0], tokens[-1] + 1, label))
        return {**{k: v[i] for k, v in self.input.items() if k != "offset_mapping"},
                "labels": self.drawn[i].label, "parts": parts}


def collate(tokenizer):
    """Pads a batch and flattens its parts into ``part_row``, ``part_start``, ``part_end`` and ``part_labels``."""
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)

    def collate_batch(items: list[dict]) -> dict:
        parts = [(row, s, e, label) for row, item in enumerate(items) for s, e, label in item["parts"]]
        batch = pad([{k: v for k, v in item.items() if k != "parts"} for item in items])
        columns = list(zip(*parts)) if parts else [(), (), (), ()]
        for name, values in zip(("part_row", "part_start", "part_end", "part_labels"), columns):
            batch[name] = torch.tensor(values, dtype=torch.long)
        return batch
    return collate_batch


class LengthGroupedEpochs(torch.utils.data.Sampler):
    """Training order: batches of examples of similar length, in random order. Each epoch it has the
    dataset draw that epoch's texts, shuffles them, sorts each run of ``group`` batches by length and
    shuffles the batches. Random batches padded every example to 2.5 times its length on average
    (Banking77 with details added: 26 tokens a query, 66 a padded one); grouped, 27.

    Like the Trainer's own ``group_by_length``, but it sorts by the lengths of the texts this epoch
    actually trains on, which the messages and details change, and each epoch depends only on the seed
    and the epoch number (the Trainer calls ``set_epoch``)."""

    def __init__(self, examples: TrainingTexts, batch_size: int, seed: int, group: int = 50):
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
