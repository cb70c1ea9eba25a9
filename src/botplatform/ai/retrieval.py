"""Top-k retrieval over a workspace's knowledge entries: TF-IDF cosine similarity over
character n-grams (3 to 5, inside word boundaries), so "shipping" finds "ship" and "PayPal"
finds "paypal".

A workspace has tens to a few thousand entries, so the index is fitted per query on the
entries read from the database — nothing to keep in sync, and no entry of another workspace
can ever be in it. With so few documents, inverse document frequencies alone would make
words like "can" or "you" decisive; the IDF is therefore estimated on the entries plus a
background of everyday customer phrases (the bundled intent dataset), which damps them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BACKGROUND = Path(__file__).parent / "datasets" / "support_intents.json"


class Document(Protocol):
    question: str
    answer: str
    content: str | None


@dataclass(frozen=True)
class Hit:
    index: int
    score: float


@cache
def background() -> tuple[str, ...]:
    intents: dict[str, list[str]] = json.loads(BACKGROUND.read_text())["intents"]
    return tuple(phrase for phrases in intents.values() for phrase in phrases)


def _text(document: Document) -> str:
    # The question is what a customer's words most resemble, so it counts twice.
    return " ".join([document.question, document.question, document.answer, document.content or ""])


def top_k(documents: Sequence[Document], query: str, k: int) -> list[Hit]:
    """The `k` documents most similar to `query`, best first; unrelated ones (score 0) never."""
    if not documents or not query.strip():
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer: Any = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        lowercase=True,
        strip_accents="unicode",
        sublinear_tf=True,
    )
    texts = [_text(d) for d in documents]
    vectorizer.fit([*texts, *background()])
    matrix = vectorizer.transform(texts)
    # Rows are L2-normalised, so the dot product is the cosine similarity.
    scores = np.asarray((matrix @ vectorizer.transform([query]).T).todense()).ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    return [Hit(int(i), float(scores[i])) for i in order if scores[i] > 0]
