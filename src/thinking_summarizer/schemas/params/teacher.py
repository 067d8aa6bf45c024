"""`teacher_labeling`: the offline extractive teacher's word lists and the served teacher's endpoint and prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinking_summarizer.schemas.params.base import Section, registered
from thinking_summarizer.schemas.params.shared import ClientSettings, Endpoint


class QualityCheck(Section):
    max_examples: int = Field(ge=0)


class NounSenses(Section):
    words: list[str]
    determiners: list[str]


class Negations(Section):
    before: list[str]
    after: list[str]


class Extractive(Section):
    """The extractive teacher: which words it reads as people, clothing, places, cues and emotions."""

    max_objects: int = Field(ge=3, le=4)
    max_people: int = Field(ge=1)
    colours: list[str]
    materials: list[str]
    garments: list[str]
    person_ages: list[str]
    clothing_stop_words: list[str]
    genders: dict[Literal["male", "female"], list[str]]
    poses: list[str]
    detail_openers: list[str]
    positions: list[str]
    ruled_out_patterns: list[str]
    spoken_of: dict[Literal["before", "after"], str]  # patterns: a mention only spoken of
    face_words: list[str]
    face_regions: dict[str, list[str]]
    linking_verbs: list[str]
    region_detail_words: int = Field(ge=0)
    not_details: list[str]
    filler_words: list[str]
    settings: list[str]
    settings_without_article: list[str]
    hand_words: list[str]
    narration_nouns: list[str]
    numbers: dict[str, int]
    plural_people: dict[str, tuple[str, str]]
    emotion_cues: list[str]
    emotion_lexicon: list[str]
    noun_senses: NounSenses
    max_emotion_indicators: int = Field(ge=0)
    negations: Negations
    conclusion_markers: list[str]
    narration_key_points: list[str]
    key_point_chars: int = Field(ge=40)


class Price(Section):
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class TeacherEndpoint(Endpoint):
    """The served teacher: its endpoint, answer format, retries on a failed check, cache and batch settings."""

    response_format: Literal["auto", "json_schema", "json_object", "markdown"]
    temperature: float = Field(ge=0)
    max_tokens: int = Field(ge=1)
    qc_retries: int = Field(ge=0)
    cache_path: str
    batch_completion_window: str
    batch_poll_s: float = Field(gt=0)
    batch_deadline_s: float = Field(gt=0)
    prices_per_million_tokens: dict[str, Price] = Field(default_factory=dict)


class TeacherClient(TeacherEndpoint, ClientSettings):
    """The served teacher's settings over the shared client policy (`io.openai_client.client_settings`)."""


class TeacherPrompt(Section):
    version: str
    system: str
    format_json: str
    format_markdown: str
    user: str
    retry: str


class TeacherLabeling(Section):
    """`teacher_labeling`: the backend and each backend's settings."""

    backend: registered("teacher_labeling.backend")
    quality_check: QualityCheck
    extractive: Extractive
    openai: TeacherEndpoint
    prompt: TeacherPrompt
