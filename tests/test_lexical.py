"""The lexical half of the intent model (agent/lexical.py) and how the head mixes it in."""
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from agent.intent import IntentHead
from agent.labelled import read_examples
from agent.lexical import MIN_DF, NGRAMS, TOKEN, LexicalModel
from agent.types import AgentError
from finetune import calibration
from conftest import REPO

TEXTS = ["My card hasn't arrived yet", "card arrived damaged, what now?", "Cancel my transfer please",
         "please cancel the transfer I made today", "Why was I charged a fee for my transfer?",
         "what's the fee for a transfer", "The card I received is broken", "Über card Straße fee"]
LABELS = np.array([0, 0, 1, 1, 2, 2, 0, 2])


def test_features_match_scikit_learn():
    """Serving recomputes TF-IDF without scikit-learn: it must give the vectors training saw."""
    model = LexicalModel.fit(TEXTS, LABELS)
    reference = TfidfVectorizer(ngram_range=NGRAMS, sublinear_tf=True, min_df=MIN_DF, token_pattern=TOKEN.pattern)
    reference.fit(TEXTS)
    assert model.vocabulary == reference.vocabulary_
    queries = TEXTS + ["transfer transfer transfer fee", "nothing known here", ""]
    expected = reference.transform(queries).toarray()
    for row, (columns, values) in zip(expected, model.features(queries)):
        dense = np.zeros(len(model.vocabulary), np.float32)
        dense[columns] = values
        assert np.allclose(dense, row, atol=1e-6)


def test_round_trip_and_probabilities(tmp_path):
    model = LexicalModel.fit(TEXTS, LABELS)
    model.save(tmp_path / "lexical.safetensors")
    loaded = LexicalModel.load(tmp_path / "lexical.safetensors")
    queries = ["where is my card", "cancel that transfer", "fee?"]
    assert np.allclose(loaded.log_probabilities(queries), model.log_probabilities(queries), atol=1e-6)
    assert np.allclose(np.exp(model.log_probabilities(queries)).sum(axis=1), 1.0, atol=1e-5)
    assert list(model.log_probabilities(queries).argmax(axis=1)) == [0, 1, 2]


def test_two_intents_work():
    model = LexicalModel.fit(TEXTS[:4], LABELS[:4])
    assert list(model.log_probabilities(["card arrived", "cancel transfer"]).argmax(axis=1)) == [0, 1]


def test_head_with_lexical_part_needs_texts_and_survives_saving(tmp_path):
    rng = np.random.default_rng(0)
    head = IntentHead(["a", "b", "c"], rng.normal(size=(3, 8)).astype(np.float32), np.zeros(3, np.float32), 1.5,
                      0.4, "enc", {}, lexical=LexicalModel.fit(TEXTS, LABELS), lexical_weight=0.7)
    head.save(tmp_path)
    loaded = IntentHead.load(tmp_path)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    texts = ["card", "transfer", "fee"]
    assert np.allclose(loaded.probabilities(x, texts), head.probabilities(x, texts), atol=1e-5)
    with pytest.raises(ValueError, match="needs the texts"):
        head.probabilities(x)
    head.lexical = None
    head.save(tmp_path)  # a head without one removes the stale file
    assert not (tmp_path / "lexical.safetensors").exists() and IntentHead.load(tmp_path).lexical is None


def test_calibration_weighs_the_lexical_model_by_what_it_adds():
    """Fitted on validation: an informative lexical model gets weight, one that is noise gets almost none."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=600)
    logits = rng.normal(size=(600, 5)) + 1.5 * np.eye(5)[labels]
    informative = np.log(np.full((600, 5), 0.05) + 0.75 * np.eye(5)[labels])
    noise = np.log(rng.dirichlet(np.ones(5), size=600))
    _, useful = calibration.fit_calibration(logits, labels, informative)
    _, useless = calibration.fit_calibration(logits, labels, noise)
    temperature, none = calibration.fit_calibration(logits, labels)
    assert useful > 0.3 and useless < 0.05 and none == 0.0 and 0.3 < temperature < 3


def test_shipped_model_has_a_lexical_part_that_helps_on_validation(agent):
    """On the validation split the shipped lexical model alone is weaker than the head, and the mix
    beats the head alone (93.9% against 93.2%: README, Measured figures)."""
    classifier = agent.classifier
    head = classifier.head
    assert head.lexical is not None and head.lexical_weight > 0.1
    examples = read_examples(REPO / "data/heldout/intent.jsonl")
    texts, truth = [e.text for e in examples], np.array([head.labels.index(e.intent) for e in examples])
    predictions = classifier.classify(texts)
    mixed = np.array([head.labels.index(p.top[0].intent) for p in predictions])
    head_alone = head.logits(np.stack([p.embedding for p in predictions]))
    lexical_alone = head.lexical.log_probabilities(texts)
    assert 0.8 < (lexical_alone.argmax(axis=1) == truth).mean() < (head_alone.argmax(axis=1) == truth).mean()
    assert (mixed == truth).mean() > (head_alone.argmax(axis=1) == truth).mean()


def test_texts_without_words_are_a_clear_error():
    with pytest.raises(AgentError, match="the training texts have no words to learn from"):
        LexicalModel.fit(["?", "1", "!"], np.array([0, 1, 1]))
