"""The intent classifier: TF-IDF over word and character n-grams, then multinomial logistic
regression, fitted with scikit-learn and kept as plain JSON.

Why not pickle (or joblib): a model row lives in the database, and loading a pickle executes
whatever the bytes say. The fitted parameters of this pipeline are a vocabulary, IDF weights,
a coefficient matrix and intercepts — data, which `LoadedClassifier` turns back into
predictions with numpy alone. Nothing read from the database is ever executed.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT = "botplatform.intent-classifier/1"

WORD_TOKENS = r"(?u)\b\w+\b"  # single-letter words count too ("I", "x")

# Two views of a phrase (picked by 5-fold cross-validation on the bundled dataset): words
# carry meaning; character n-grams inside word boundaries survive typos and inflections
# ("cancelled", "cancellation").
ANALYZERS: tuple[dict[str, Any], ...] = (
    {"analyzer": "word", "ngram_range": (1, 1), "token_pattern": WORD_TOKENS},
    {"analyzer": "char_wb", "ngram_range": (2, 5)},
)
COMMON = {"lowercase": True, "strip_accents": "unicode", "sublinear_tf": True, "min_df": 1}
REGULARIZATION_C = 10.0
TEST_SIZE = 0.25
SEED = 13
MIN_EXAMPLES_PER_INTENT = 4
MIN_INTENTS = 2


class TrainingError(ValueError):
    """The dataset cannot be trained on (too few intents or examples); said in words."""


@dataclass(frozen=True)
class TrainingResult:
    artifact: str
    accuracy: float
    metrics: dict[str, Any] = field(default_factory=dict)


def check_dataset(dataset: Mapping[str, list[str]]) -> None:
    if len(dataset) < MIN_INTENTS:
        raise TrainingError(f"Training needs at least {MIN_INTENTS} intents.")
    short = sorted(
        name for name, phrases in dataset.items() if len(set(phrases)) < MIN_EXAMPLES_PER_INTENT
    )
    if short:
        raise TrainingError(
            f"Each intent needs at least {MIN_EXAMPLES_PER_INTENT} distinct example phrases; "
            f"too few in: {', '.join(short)}."
        )


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    union = FeatureUnion(
        [(spec["analyzer"], TfidfVectorizer(**{**COMMON, **spec})) for spec in ANALYZERS]
    )
    return Pipeline(
        [("features", union), ("model", LogisticRegression(C=REGULARIZATION_C, max_iter=2000))]
    )


def _rows(dataset: Mapping[str, list[str]]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for name in sorted(dataset):
        for phrase in dict.fromkeys(dataset[name]):  # distinct, in order
            texts.append(phrase)
            labels.append(name)
    return texts, labels


def train(dataset: Mapping[str, list[str]]) -> TrainingResult:
    """Scores the pipeline on a stratified held-out split, then fits it on every example (the
    deployed model learns from all of them; the stored accuracy is the held-out estimate)."""
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    check_dataset(dataset)
    texts, labels = _rows(dataset)
    test_size = max(TEST_SIZE, len(dataset) / len(texts))  # at least one test phrase per intent
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=test_size, random_state=SEED, stratify=labels
    )
    scored = _pipeline().fit(train_x, train_y)
    accuracy = float(accuracy_score(test_y, scored.predict(test_x)))
    final = _pipeline().fit(texts, labels)
    metrics = {
        "train_size": len(train_x),
        "test_size": len(test_x),
        "examples": len(texts),
        "intents": len(dataset),
        "misclassified": [
            {"text": text, "expected": want, "predicted": got}
            for text, want, got in zip(test_x, test_y, scored.predict(test_x), strict=True)
            if want != got
        ][:20],
    }
    return TrainingResult(serialize(final), accuracy, metrics)


def _b64(array: NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def _unb64(text: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape)


def serialize(pipeline: Any) -> str:
    """The fitted parameters as JSON (arrays as little-endian float32, base64)."""
    analyzers = []
    for (_, vectorizer), spec in zip(
        pipeline.named_steps["features"].transformer_list, ANALYZERS, strict=True
    ):
        vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        analyzers.append(
            {
                "analyzer": spec["analyzer"],
                "ngram_range": list(spec["ngram_range"]),
                "token_pattern": spec.get("token_pattern"),
                "vocabulary": vocabulary,
                "idf": _b64(vectorizer.idf_),
            }
        )
    model = pipeline.named_steps["model"]
    return json.dumps(
        {
            "format": FORMAT,
            "common": COMMON,
            "analyzers": analyzers,
            "classes": [str(name) for name in model.classes_],
            "coef_shape": list(model.coef_.shape),
            "coef": _b64(model.coef_),
            "intercept": _b64(model.intercept_),
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class _View:
    analyze: Callable[[str], list[str]]
    index: dict[str, int]
    idf: NDArray[np.float32]
    offset: int


class LoadedClassifier:
    """Predictions from a serialized artifact, with numpy only: term counts → sublinear TF
    times IDF → L2 norm per view → linear scores → softmax (a sigmoid for two intents)."""

    def __init__(self, artifact: str) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        data = json.loads(artifact)
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown intent model format {data.get('format')!r}")
        self.classes: list[str] = list(data["classes"])
        self._views: list[_View] = []
        offset = 0
        for view in data["analyzers"]:
            options: dict[str, Any] = {
                "analyzer": view["analyzer"],
                "ngram_range": tuple(view["ngram_range"]),
                "lowercase": True,
                "strip_accents": "unicode",
            }
            if view.get("token_pattern"):
                options["token_pattern"] = view["token_pattern"]
            vocabulary: list[str] = view["vocabulary"]
            # Only the (pure) tokenizer of an unfitted vectorizer is used: no state is loaded.
            analyze = TfidfVectorizer(**options).build_analyzer()
            idf = _unb64(view["idf"], (len(vocabulary),))
            index = {term: i for i, term in enumerate(vocabulary)}
            self._views.append(_View(analyze, index, idf, offset))
            offset += len(vocabulary)
        rows, cols = data["coef_shape"]
        if cols != offset:
            raise ValueError("intent model artifact is inconsistent")
        self._coef = _unb64(data["coef"], (rows, cols)).astype(np.float64)
        self._intercept = _unb64(data["intercept"], (rows,)).astype(np.float64)

    def _features(self, text: str) -> NDArray[np.float64]:
        vector = np.zeros(self._coef.shape[1])
        for view in self._views:
            counts = Counter(term for term in view.analyze(text) if term in view.index)
            if not counts:
                continue
            ids = np.array([view.index[term] for term in counts])
            weights = np.array([1.0 + math.log(n) for n in counts.values()]) * view.idf[ids]
            norm = float(np.linalg.norm(weights))
            vector[view.offset + ids] = weights / norm
        return vector

    def probabilities(self, text: str) -> dict[str, float]:
        scores = self._coef @ self._features(text) + self._intercept
        if len(self.classes) == 2:  # binary logistic regression: one score for class 1
            p1 = 1.0 / (1.0 + math.exp(-float(scores[0])))
            probs = np.array([1.0 - p1, p1])
        else:
            exp = np.exp(scores - scores.max())
            probs = exp / exp.sum()
        return {name: float(p) for name, p in zip(self.classes, probs, strict=True)}

    def predict(self, text: str) -> tuple[str, float]:
        probs = self.probabilities(text)
        best = max(probs, key=probs.__getitem__)
        return best, probs[best]
