"""`evaluation`: which student is scored, how objects are matched, and when the student is promoted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinking_summarizer.schemas.params.base import Section


class Promotion(Section):
    metric: str
    reference: Literal["truth", "teacher"]
    margin: float = Field(ge=0)
    alias: str = Field(min_length=1)


class Evaluation(Section):
    student: str | None = None  # None: the version lora_training just registered
    include_untrained: bool
    device: str
    batch_size: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    min_attribute_overlap: float = Field(ge=0, le=1)
    attribute_words: list[str]
    identity_words: list[str]
    exclusive_words: list[list[str]]
    truth_ignore_categories: list[str]
    worst_samples: int = Field(ge=0)
    promotion: Promotion
