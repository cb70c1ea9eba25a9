"""Top-k retrieval over a workspace's knowledge entries: TF-IDF cosine similarity.

A workspace has tens to a few thousand entries, so the index is fitted per query on the
entries read from the database — nothing to keep in sync, and no entry of another workspace
can ever be in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from botplatform.ai.classifier import WORD_TOKENS


class Document(Protocol):
    question: str
    answer: str
    content: str | None


@dataclass(frozen=True)
class Hit:
    index: int
    score: float


def _text(document: Document) -> str:
    # The question is what a customer's words most resemble, so it counts twice.
    return " ".join([document.question, document.question, document.answer, document.content or ""])


def top_k(documents: Sequence[Document], query: str, k: int) -> list[Hit]:
    """The `k` documents most similar to `query`, best first; unrelated ones (score 0) never."""
    if not documents or not query.strip():
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer: Any = TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        lowercase=True,
        strip_accents="unicode",
        sublinear_tf=True,
        token_pattern=WORD_TOKENS,
    )
    try:
        matrix = vectorizer.fit_transform([_text(d) for d in documents])
    except ValueError:  # no token at all in any document
        return []
    # Rows are L2-normalised, so the dot product is the cosine similarity.
    scores = np.asarray((matrix @ vectorizer.transform([query]).T).todense()).ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    return [Hit(int(i), float(scores[i])) for i in order if scores[i] > 0]
