"""Sections several pipelines read: the summary's vocabulary and checks, the one OpenAI client's policy, tracking,
the run's checks, and how the student answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinking_summarizer.schemas.params.base import Section, registered


class MaxChars(Section):
    key_point: int = Field(gt=0)
    description: int = Field(gt=0)
    emotion_indicator: int = Field(gt=0)
    sam3_prompt: int = Field(gt=0)


class SummaryQC(Section):
    """`summary_qc`: what a summary may not be (empty, placeholder, too long), whoever wrote it."""

    empty_description_words: list[str]
    max_answer_chars: int = Field(gt=0)
    max_chars: MaxChars
    max_emotion_indicators: int = Field(gt=0)
    placeholder_patterns: list[str]


class Vocabulary(Section):
    """`vocabulary`: the categories an object may have, and the words that mean each."""

    categories: list[str] = Field(min_length=1)
    synonyms: dict[str, list[str]] = Field(default_factory=dict)


class Tracking(Section):
    uri: str
    experiment: str


class ClientPolicy(Section):
    """`openai_client`: how the one OpenAI-compatible client retries, limits and gives up, for every server."""

    connect_timeout_s: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    max_timeout_attempts: int = Field(ge=1)
    same_error_attempts: int = Field(ge=1)
    circuit_breaker_timeouts: int | None = Field(default=None, ge=0)
    deadline_s: float | None = Field(default=None, gt=0)
    backoff_base_s: float = Field(ge=0)
    backoff_max_s: float = Field(ge=0)
    backoff_jitter: float = Field(ge=0, le=1)
    max_retry_after_s: float = Field(ge=0)
    max_response_bytes: int = Field(gt=0)
    stream: bool
    stream_options: dict[str, bool] | None = None
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    chars_per_token: float = Field(gt=0)
    claim_lease_s: float = Field(gt=0)
    claim_poll_s: float = Field(gt=0)
    config_error_patterns: list[str]
    sample_error_patterns: list[str]


class Endpoint(Section):
    """One server a stage talks to; `client_settings` lays it over the shared `ClientPolicy`."""

    base_url: str | None = None
    model: str
    api_key_env: str | None = None
    credentials: str | None = None
    concurrency: int = Field(ge=1)
    timeout_s: float = Field(gt=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)


class ClientSettings(ClientPolicy, Endpoint):
    """What one client is built from: the shared policy with a stage's endpoint over it."""


class ParameterCheck(Section):
    open_mappings: list[str]


class WhenRule(Section):
    key: str
    in_: list[str] = Field(alias="in")


class ModelRule(Section):
    """A model dataset's conf key, the tiny recipe that stands in for it and the pipeline that builds it."""

    key: str
    tiny: str
    built_by: str
    when: WhenRule | None = None


class Preflight(Section):
    require_cuda: bool
    hub_endpoint: str
    hub_timeout_s: float = Field(gt=0)
    models: dict[str, ModelRule]


class VLLMSettings(Section):
    max_lora_rank: int = Field(ge=1)
    gpu_memory_utilization: float = Field(gt=0, le=1)


class StudentInference(Section):
    """`student_inference`: how the trained student answers, wherever it runs."""

    backend: registered("student_inference.backend")
    sort_by_length: bool
    cache_implementation: Literal["dynamic", "static"]
    memory_fraction: float = Field(ge=0, le=1)
    max_batch_size: int = Field(ge=1)
    constrained: bool
    vllm: VLLMSettings
    openai: Endpoint
