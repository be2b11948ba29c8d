"""The entity noise that intent training adds (finetune/augment.py) and the dataset that draws it."""
import random

import numpy as np

from agent.encoder import load_tokenizer
from agent.entities import extract
from finetune.augment import add_entity_noise
from finetune.intent import NoisyExamples

QUERY = "Why has my transfer not arrived yet?"


def test_noise_keeps_the_query_and_adds_details_the_detectors_find():
    rng = random.Random(3)
    noisy = [add_entity_noise(QUERY, rng) for _ in range(300)]
    assert all(QUERY.rstrip("?") in text for text in noisy)
    assert all(len(text) > len(QUERY) + 5 for text in noisy)
    assert len(set(noisy)) > 290  # values and wording vary: not a handful of templates to memorise
    # Most added details are entities the agent reads (the rest: random IBANs fail mod-97, names).
    with_entities = np.mean([bool(extract(text)) for text in noisy])
    assert with_entities > 0.7
    kinds = {e.kind for text in noisy for e in extract(text)}
    assert {"amount", "date", "email", "phone", "reference", "card_last4", "account_number", "sort_code"} <= kinds


def test_noise_is_reproducible_from_its_seed():
    first = [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]
    assert first == [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]


def test_noisy_examples_add_details_to_a_share_and_keep_labels():
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    clean = tokenizer(QUERY)["input_ids"]
    texts, labels = [QUERY] * 400, np.arange(400) % 3
    none = NoisyExamples(texts, labels, tokenizer, 0.0, seed=1)
    assert all(none[i]["input_ids"] == clean and none[i]["labels"] == labels[i] for i in range(len(none)))
    half = NoisyExamples(texts, labels, tokenizer, 0.5, seed=1)
    changed = [half[i]["input_ids"] != clean for i in range(len(half))]
    assert 0.4 < np.mean(changed) < 0.6
    assert [half[i]["labels"] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    # Drawn afresh each time an example is read: a second epoch sees other details.
    assert [half[i]["input_ids"] for i in range(20)] != [half[i]["input_ids"] for i in range(20)]
