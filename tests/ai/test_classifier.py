"""The intent classifier without a database: held-out accuracy on the bundled dataset, the
JSON artifact reproducing scikit-learn's predictions exactly, and dataset checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from botplatform.ai import classifier, retrieval
from tests.ai.test_service import FAQ, support_dataset


@pytest.fixture(scope="module")
def trained() -> classifier.TrainingResult:
    return classifier.train(support_dataset())


def test_bundled_dataset_is_substantial() -> None:
    dataset = support_dataset()
    assert {"greeting", "order_status", "opening_hours", "human_agent", "cancel", "pricing"} <= set(
        dataset
    )
    for name, phrases in dataset.items():
        assert len(set(phrases)) >= 20, name


def test_held_out_accuracy_is_at_least_90_percent(trained: classifier.TrainingResult) -> None:
    assert trained.accuracy >= 0.9, trained.metrics["misclassified"]
    assert trained.metrics["test_size"] >= 0.2 * trained.metrics["examples"]
    assert trained.metrics["train_size"] + trained.metrics["test_size"] == 180


def test_held_out_accuracy_of_the_restored_artifact_independently() -> None:
    """Not trusting `train`'s own number: split, fit, serialise, restore, score."""
    texts, labels = classifier._rows(support_dataset())
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=0.25, random_state=7, stratify=labels
    )
    pipeline = classifier._pipeline().fit(train_x, train_y)
    restored = classifier.LoadedClassifier(classifier.serialize(pipeline))
    predicted = [restored.predict(text)[0] for text in test_x]
    assert accuracy_score(test_y, predicted) >= 0.9


def test_artifact_reproduces_scikit_learn_probabilities() -> None:
    dataset = support_dataset()
    pipeline = classifier._pipeline().fit(*classifier._rows(dataset))
    restored = classifier.LoadedClassifier(classifier.serialize(pipeline))
    samples = ["hello!!", "wher is my pakage", "Ça coûte combien ?", "x", "🙂", "cancel pls"]
    expected = pipeline.predict_proba(samples)
    for text, row in zip(samples, expected, strict=True):
        got = restored.probabilities(text)
        assert list(got) == list(pipeline.classes_)
        assert np.allclose(list(got.values()), row, atol=1e-5), text


def test_two_intents_use_the_binary_form() -> None:
    dataset = {k: v for k, v in support_dataset().items() if k in {"greeting", "cancel"}}
    pipeline = classifier._pipeline().fit(*classifier._rows(dataset))
    restored = classifier.LoadedClassifier(classifier.serialize(pipeline))
    for text in ("hi there", "cancel my order please"):
        got = list(restored.probabilities(text).values())
        assert np.allclose(got, pipeline.predict_proba([text])[0], atol=1e-5)


def test_artifact_is_plain_json_and_foreign_formats_are_refused(
    trained: classifier.TrainingResult,
) -> None:
    data = json.loads(trained.artifact)
    assert data["format"] == classifier.FORMAT
    assert set(data) == {
        "format",
        "common",
        "analyzers",
        "classes",
        "coef_shape",
        "coef",
        "intercept",
    }
    with pytest.raises(ValueError, match="unknown intent model format"):
        classifier.LoadedClassifier(json.dumps({**data, "format": "pickle"}))
    data["coef_shape"] = [data["coef_shape"][0], data["coef_shape"][1] + 1]
    with pytest.raises(ValueError, match="inconsistent"):
        classifier.LoadedClassifier(json.dumps(data))


def test_dataset_checks_say_what_is_missing() -> None:
    with pytest.raises(classifier.TrainingError, match="at least 2 intents"):
        classifier.check_dataset({"a": ["1", "2", "3", "4"]})
    with pytest.raises(classifier.TrainingError, match="too few in: b"):
        classifier.check_dataset({"a": ["1", "2", "3", "4"], "b": ["x", "x", "y", "z"]})


def test_retrieval_ranks_by_similarity() -> None:
    class Entry:
        def __init__(self, question: str, answer: str) -> None:
            self.question, self.answer, self.content = question, answer, None

    entries = [Entry(q, a) for q, a in FAQ]
    assert retrieval.top_k(entries, "shipping to spain?", 2)[0].index == 1
    assert retrieval.top_k(entries, "", 3) == []
    assert retrieval.top_k([], "anything", 3) == []
    assert len(retrieval.top_k(entries, "open payment return ship", 10)) == 4
