from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from botplatform.kit.schemas import InputModel

IntentName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
    Field(description="Lower case letters, digits, `_`, `.`, `-` (e.g. `order_status`)"),
]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Answer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
Content = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
Instructions = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
MAX_EXAMPLES = 500


def _distinct(phrases: list[str] | None) -> list[str] | None:
    # Case-insensitive duplicates teach nothing and skew the held-out split.
    if phrases is None:
        return None
    seen: dict[str, str] = {}
    for phrase in phrases:
        seen.setdefault(phrase.casefold(), phrase)
    return list(seen.values())


class IntentCreate(InputModel):
    name: IntentName
    description: Description | None = None
    examples: list[Phrase] = Field(
        min_length=1, max_length=MAX_EXAMPLES, description="Example phrases a customer might send"
    )

    _examples = field_validator("examples")(_distinct)


class IntentUpdate(InputModel):
    name: IntentName | None = None
    description: Description | None = None
    examples: list[Phrase] | None = Field(None, min_length=1, max_length=MAX_EXAMPLES)

    _examples = field_validator("examples")(_distinct)


class IntentOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    examples: list[str]
    created_at: datetime
    updated_at: datetime


class IntentModelOut(BaseModel):
    id: uuid.UUID
    version: int
    status: str = Field(description="queued, training, ready or failed")
    is_active: bool = Field(description="The version inference uses; one per workspace")
    accuracy: float | None = Field(description="Share of the held-out split classified right")
    intents: list[str] = Field(description="The intents this version was trained on")
    metrics: dict[str, Any] = Field(
        description="train_size, test_size, examples, and the misclassified held-out phrases"
    )
    error: str | None
    trained_at: datetime | None
    created_at: datetime


class PredictionOut(BaseModel):
    intent: str
    confidence: float
    version: int
    scores: dict[str, float] = Field(description="Probability of every intent")


class KnowledgeCreate(InputModel):
    question: Question
    answer: Answer
    content: Content | None = Field(None, description="Longer text the answer may draw on")


class KnowledgeUpdate(InputModel):
    question: Question | None = None
    answer: Answer | None = None
    content: Content | None = None


class KnowledgeOut(BaseModel):
    id: uuid.UUID
    question: str
    answer: str
    content: str | None
    created_at: datetime
    updated_at: datetime


class KnowledgeHit(BaseModel):
    entry: KnowledgeOut
    score: float = Field(description="Cosine similarity to the query, 0 to 1")


class AnswerRequest(InputModel):
    question: Question
    instructions: Instructions | None = Field(
        None, description="Extra instructions for the model (tone, signature, …)"
    )


class AnswerOut(BaseModel):
    text: str
    fallback_used: bool
    outcome: str = Field(
        description="ok, timeout, provider_error, not_configured or quota_exceeded"
    )
    prompt_tokens: int
    completion_tokens: int
    sources: list[uuid.UUID] = Field(description="Knowledge entries the answer was grounded on")


class UsageOut(BaseModel):
    period_start: datetime
    monthly_token_limit: int | None = Field(description="None when there is no limit")
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    by_outcome: dict[str, dict[str, int]]
