"""Every record shape the pipelines exchange, as pydantic v2 models."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ProblemType = Literal[
    "multiple choice", "emer_ov_mc", "numerical", "free-form", "judge", "regression", "OCR"
]
Priority = Literal["primary", "secondary"]
Row = dict[str, Any]  # one record as a JSON dataset holds it: a sample, a label, a reject, a report


class SourceRecord(BaseModel):
    """One record as IntentBench, Daily-Omni and IntentTrain publish it."""

    model_config = ConfigDict(extra="allow")

    problem: str = Field(min_length=1)
    problem_type: ProblemType
    options: list[str] = Field(default_factory=list)
    solution: str | None = None
    answer: str | None = None
    data_type: Literal["video", "image"] = "video"
    video: str | None = None
    path: str | None = None
    clean_list: list[str] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)  # a format's extra fields (e.g. Daily-Omni's categories)

    @model_validator(mode="after")
    def _has_media(self) -> SourceRecord:
        if not (self.video or self.path):
            raise ValueError("record has neither 'video' nor 'path'")
        return self

    @property
    def media(self) -> str:
        """Media path relative to the source's video root (`video` wins over `path`)."""
        return self.video or self.path or ""


class Sample(BaseModel):
    """A unified, sampled question about one video."""

    sample_id: str
    source: str
    video_id: str
    video_path: str
    question: str
    options: list[str] = Field(default_factory=list)
    problem_type: ProblemType
    answer: str | None = None
    reference_context: str | None = None
    reference_thinking: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    video_info: dict[str, Any] | None = None  # probed at sampling: fps, frames, duration, size, audio


class VisualObject(BaseModel):
    """One segmentable object: a vocabulary category plus appearance and position."""

    category: str = Field(min_length=1)
    description: str = Field(min_length=1)
    priority: Priority

    @field_validator("category")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class Summary(BaseModel):
    """The structured summary of one thinking, the teacher's and the student's target."""

    key_points: list[str] = Field(min_length=3, max_length=3)
    objects: list[VisualObject] = Field(min_length=3, max_length=4)
    emotion_indicators: list[str] = Field(default_factory=list)
    sam3_prompts: list[str]

    @model_validator(mode="after")
    def _consistent(self) -> Summary:
        if not any(obj.priority == "primary" for obj in self.objects):
            raise ValueError("at least one object must be primary")
        if len(self.sam3_prompts) != len(self.objects):
            raise ValueError(
                f"{len(self.sam3_prompts)} SAM3 prompts for {len(self.objects)} objects: "
                "need exactly one per object"
            )
        return self

    @property
    def primary(self) -> list[VisualObject]:
        return [obj for obj in self.objects if obj.priority == "primary"]

    @property
    def secondary(self) -> list[VisualObject]:
        return [obj for obj in self.objects if obj.priority == "secondary"]


class ThinkingRecord(BaseModel):
    """HumanOmniV2's thinking on one sample that passed the gates (`thinking_records`)."""

    sample_id: str
    context: str
    thinking: str = Field(min_length=1)
    answer: str | None
    raw_text: str
    generator_id: str
    answer_correct: bool | None


class TeacherLabel(BaseModel):
    """The teacher's summary of one thinking (`teacher_labels`)."""

    sample_id: str
    teacher: str
    prompt_version: str
    summary: Summary
    markdown: str = Field(min_length=1)
    cached: bool


class Example(BaseModel):
    """One training or validation example: a thinking and its summary (`clean_examples`, `val_examples`)."""

    sample_id: str
    source: str
    problem_type: ProblemType
    video_id: str
    thinking: str = Field(min_length=1)
    summary: Summary
    markdown: str = Field(min_length=1)
    teacher: str


class SceneObject(BaseModel):
    """Ground truth for one object drawn into a demo video."""

    object_id: int
    category: str
    description: str
    colour: str
    priority: Priority
    sam3_prompt: str


class DemoScene(BaseModel):
    """Ground truth for one synthetic demo scene."""

    scene_id: str
    video: str
    masks: str
    objects: list[SceneObject]
    distractors: list[str]
    emotion: str
    num_frames: int
    fps: float
    width: int
    height: int


class TruthScene(BaseModel):
    """The demo's ground truth for one sampled video (`ground_truth`, by video_id): its objects and masks file."""

    scene_id: str
    objects: list[SceneObject]
    masks: str


def video_id(media: str) -> str:
    """A source-independent key for a video: its relative path without extension, case kept (YouTube ids are
    case-sensitive: `G_VTkkb34gw` and `g_vtkkb34gw` are different videos)."""
    return str(PurePosixPath(media.replace("\\", "/")).with_suffix("")).lstrip("./")


def field_errors(err: ValidationError, whole: str = "(record)") -> list[tuple[str, str]]:
    """(dotted field, message) for each problem pydantic found; `whole` names a record-level one."""
    return [(".".join(str(p) for p in problem["loc"]) or whole, problem["msg"]) for problem in err.errors()]
