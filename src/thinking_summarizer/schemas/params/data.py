"""`data_sampling`, `demo_data` and `dataset_build`: which questions, from which files, into which splits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from thinking_summarizer.schemas.params.base import Section


class SourceConfig(Section):
    """One configured source file (`data_sampling.sources.<name>`)."""

    path: str = Field(min_length=1)
    video_root: str | None = None  # default: the source file's folder
    ratio: float = Field(default=1.0, ge=0, allow_inf_nan=False)  # .inf passed and then broke allocate
    format: str = "auto"


class SamplingPolicy(Section):
    on_invalid: Literal["reject", "fail"] = "reject"
    on_missing_video: Literal["reject", "keep"] = "reject"
    on_empty_source: Literal["fail", "warn"] = "fail"


class DataSampling(Section):
    """`data_sampling`: the sources, how many questions and with which seed."""

    n_samples: int = Field(gt=0)
    seed: int
    policy: SamplingPolicy
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    demo_sources: dict[str, SourceConfig]

    @field_validator("sources", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or {}

    @field_validator("sources", "demo_sources")
    @classmethod
    def _ratios(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        if value and sum(s.ratio for s in value.values()) <= 0:
            raise ValueError("the ratios must have a positive sum")
        return value


class VideoShape(Section):
    width: int = Field(ge=16)
    height: int = Field(ge=16)
    num_frames: int = Field(ge=1)
    fps: float = Field(gt=0)


class DemoAudio(Section):
    sampling_rate: int = Field(gt=0)
    silent_share: float = Field(ge=0, le=1)
    pitch_hz: dict[str, float]


class CharRange(Section):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class People(Section):
    nouns: list[str] = Field(min_length=1)
    garments: list[str] = Field(min_length=1)


class Thing(Section):
    nouns: list[str] = Field(min_length=1)
    size: tuple[float, float]


class DemoData(Section):
    """`demo_data`: the synthetic corpus the default run makes (scenes, their videos, sound and chains)."""

    root: str
    seed: int
    n_scenes: int = Field(ge=1)
    source_shares: dict[str, float]
    duplicate_video_share: float = Field(ge=0, le=1)
    video: VideoShape
    audio: DemoAudio
    thinking_chars: CharRange
    colours: dict[str, tuple[int, int, int]]
    people: People
    things: dict[str, Thing]
    emotions: dict[str, list[str]]
    settings: list[str] = Field(min_length=1)


class Split(Section):
    seed: int
    val_fraction: float = Field(gt=0, lt=1)
    stratify_by: list[str]


class DatasetBuild(Section):
    """`dataset_build`: the split by video and the instruction the student is trained with."""

    split: Split
    instruction: str = Field(min_length=1)
