"""The entity noise that intent training adds (finetune/augment.py) and the dataset that draws it."""
import random

import numpy as np

from agent.encoder import load_tokenizer
from agent.entities import extract, iban_valid
from finetune.augment import BBANS, _iban, add_entity_noise
from finetune.intent_data import IGNORE, LengthGroupedEpochs, TrainingTexts

QUERY = "Why has my transfer not arrived yet?"


def test_noise_keeps_the_query_and_adds_details_the_detectors_find():
    rng = random.Random(3)
    noisy = [add_entity_noise(QUERY, rng) for _ in range(300)]
    assert all(QUERY.rstrip("?") in text for text in noisy)
    assert all(len(text) > len(QUERY) + 5 for text in noisy)
    assert len(set(noisy)) > 290  # values and wording vary: not a handful of templates to memorise
    # Most added details are entities the agent reads (the rest: names, sign-offs, "last Tuesday").
    with_entities = np.mean([bool(extract(text)) for text in noisy])
    assert with_entities > 0.7
    kinds = {e.kind for text in noisy for e in extract(text)}
    assert {"amount", "date", "email", "phone", "reference", "card_last4", "account_number", "sort_code",
            "iban"} <= kinds


def test_added_ibans_pass_the_check_real_ones_do():
    rng = random.Random(5)
    ibans = [_iban(rng) for _ in range(500)]
    assert all(iban_valid(iban) for iban in ibans)
    assert {iban[:2] for iban in ibans} == set(BBANS)
    assert all(len(iban.replace(" ", "")) == 4 + sum(n for _, n in BBANS[iban[:2]]) for iban in ibans)


def test_noise_is_reproducible_from_its_seed():
    first = [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]
    assert first == [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]


def test_noisy_examples_add_details_to_a_share_and_keep_labels():
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    clean = tokenizer(QUERY)["input_ids"]
    texts, labels = [QUERY] * 400, np.arange(400) % 3
    names = ["card_arrival", "change_pin", "exchange_rate"]
    none = TrainingTexts(texts, labels, names, tokenizer, seed=1, message_share=0.0, entity_noise=0.0)
    assert all(none[i]["input_ids"] == clean and none[i]["labels"] == labels[i] for i in range(len(none)))
    half = TrainingTexts(texts, labels, names, tokenizer, seed=1, message_share=0.0, entity_noise=0.5)
    changed = [half[i]["input_ids"] != clean for i in range(len(half))]
    assert 0.4 < np.mean(changed) < 0.6
    assert [half[i]["labels"] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    # Drawn afresh for each epoch, from the seed and the epoch alone: a second epoch sees other
    # details, and drawing an epoch again (a resumed run) gives the same ones.
    first = [half[i]["input_ids"] for i in range(20)]
    half.draw(1)
    assert [half[i]["input_ids"] for i in range(20)] != first
    half.draw(0)
    assert [half[i]["input_ids"] for i in range(20)] == first
    drawn = half.input
    half.draw(0)  # the sampler's first epoch, already drawn when the dataset was made
    assert half.input is drawn


def test_batches_group_similar_lengths_and_cover_every_example_once():
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    rng = random.Random(2)
    texts = [" ".join(["word"] * rng.randint(2, 60)) for _ in range(1000)]  # 1000 = 31 batches of 32 + 8
    sampler = LengthGroupedEpochs(TrainingTexts(texts, np.zeros(1000, int), ["a"], tokenizer, seed=4,
                                                message_share=0.0, entity_noise=0.5), 32, seed=4, group=10)
    def padding_efficiency(order: list[int]) -> float:
        lengths = np.array([len(sampler.examples[i]["input_ids"]) for i in order])
        return lengths.sum() / sum(lengths[i:i + 32].max() * len(lengths[i:i + 32]) for i in range(0, 1000, 32))

    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(1000))
        assert padding_efficiency(order) > 0.85 > padding_efficiency(list(np.random.default_rng(epoch).permutation(1000))) + 0.25
        orders.append(order)
    assert orders[0] != orders[1] and orders[0] == orders[2]
    assert list(sampler) != orders[0]  # a loader that never calls set_epoch still gets the next epoch
    # The batches come in random order, not longest first in each run: that would be a curriculum.
    means = [np.mean([len(sampler.examples[i]["input_ids"]) for i in orders[0][j:j + 32]]) for j in range(0, 992, 32)]
    assert np.mean(np.diff(means) < 0) < 0.75


def test_whole_messages_teach_the_message_and_the_parts_that_ask():
    """A share of the queries come inside whole messages: a single request labels the message and its
    parts; a message with two requests labels only its parts, each with its own request's intent."""
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    names = ["card_arrival", "change_pin"]
    texts = ["my card still hasn't arrived", "how do I change my PIN?"] * 100
    labels = np.arange(200) % 2
    data = TrainingTexts(texts, labels, names, tokenizer, seed=3, message_share=1.0, two_share=0.5, entity_noise=0.0)
    drawn = data.drawn
    two = [d for d in drawn if d.label == IGNORE]
    assert 0.3 < len(two) / len(drawn) < 0.7
    asked = [{label for label in d.part_labels if label != IGNORE} for d in two]
    assert all(a and a <= {0, 1} for a in asked)
    # Each request is a part of its own, except where speech runs them together with nothing between
    assert np.mean([a == {0, 1} for a in asked]) > 0.75
    for d, label in zip(drawn, labels):
        if d.label != IGNORE:
            assert d.label == label and {p for p in d.part_labels if p != IGNORE} == {label}
    assert np.mean([len(d.text.split()) for d in drawn]) > 4 * len(texts[0].split())  # whole messages, mostly
    item = data[0]
    assert item["parts"] and all(0 < s < e <= len(item["input_ids"]) for s, e, _ in item["parts"])
