"""Every record shape the pipelines exchange, as pydantic v2 models."""

from __future__ import annotations

import difflib
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thinking_summarizer.backends import REGISTRY, unknown_backend

ProblemType = Literal[
    "multiple choice", "emer_ov_mc", "numerical", "free-form", "judge", "regression", "OCR"
]
Priority = Literal["primary", "secondary"]


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


class SourceConfig(BaseModel):
    """One configured source file (`data_sampling.sources.<name>`)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    video_root: str | None = None  # default: the source file's folder
    ratio: float = Field(default=1.0, ge=0, allow_inf_nan=False)  # .inf passed and then broke allocate
    format: str = "auto"


class SamplingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_invalid: Literal["reject", "fail"] = "reject"
    on_missing_video: Literal["reject", "keep"] = "reject"
    on_empty_source: Literal["fail", "warn"] = "fail"


class DataSamplingParams(BaseModel):
    """`data_sampling` parameters, checked when a run starts."""

    model_config = ConfigDict(extra="forbid")

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


class LoggedInput(BaseModel):
    """A dataset a stage read, logged as an MLflow dataset input (name, digest, rows)."""

    name: str
    context: str
    digest: str
    rows: list[dict[str, Any]]


class RegistryUpdate(BaseModel):
    """A change to a registered model version: its tags, and the alias moved onto it (None: no move)."""

    name: str
    version: str
    alias: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class TrackingRecord(BaseModel):
    """What a stage hands to MLflow, as a node output: the tracking catalog dataset logs it into the stage's
    child run (nodes never call MLflow). `files` are written into the run, `local` are paths already on disk."""

    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str | bytes] = Field(default_factory=dict)
    local: dict[str, str] = Field(default_factory=dict)
    inputs: list[LoggedInput] = Field(default_factory=list)
    registry: RegistryUpdate | None = None


def video_id(media: str) -> str:
    """A source-independent key for a video: its relative path without extension, case kept (YouTube ids are
    case-sensitive: `G_VTkkb34gw` and `g_vtkkb34gw` are different videos)."""
    return str(PurePosixPath(media.replace("\\", "/")).with_suffix("")).lstrip("./")


def field_errors(err: ValidationError, whole: str = "(record)") -> list[tuple[str, str]]:
    """(dotted field, message) for each problem pydantic found; `whole` names a record-level one."""
    return [(".".join(str(p) for p in problem["loc"]) or whole, problem["msg"]) for problem in err.errors()]


def parameter_errors(params: dict[str, Any]) -> list[str]:
    """Every problem in the run's parameters, each naming its key; checked before any node runs."""
    errors = []
    if "data_sampling" in params:
        try:
            DataSamplingParams.model_validate(params["data_sampling"])
        except ValidationError as err:
            errors += [f"data_sampling.{field}: {message}" for field, message in field_errors(err, "(section)")]
    for key in REGISTRY:
        section, name = key.split(".")
        value = (params.get(section) or {}).get(name)
        if value is not None and (error := unknown_backend(key, value)):
            errors.append(error)
    return errors


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "text", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def override_errors(params: dict[str, Any], reference: dict[str, Any], open_paths: list[str], at: str = "") -> list[str]:
    """What an override (`--params`, conf/local, an env) gets wrong against `reference` (conf/base), each naming
    its key: a key conf/base does not have, with the nearest known one (a misspelt key would otherwise be silently
    ignored), and a value of another kind than conf/base's (a number, true/false, text, a list, a mapping:
    `learning_rate=abc` would otherwise fail in the trainer minutes later). null is always allowed (a knob
    switched off), and so is anything where conf/base has null or `auto`. Mappings named in `open_paths`, and those
    empty in the reference, take keys of the user's own (sources, synonyms)."""
    errors = []
    for key, value in params.items():
        path = f"{at}{key}"
        if key not in reference:
            near = difflib.get_close_matches(str(key), [str(k) for k in reference], n=1)
            errors.append(f"{path}: not a parameter of conf/base" + (f" (did you mean {at}{near[0]}?)" if near else ""))
            continue
        base = reference[key]
        if value is None or base is None or base == "auto":
            continue
        if _kind(value) != _kind(base):
            errors.append(f"{path}: {value!r} is {_kind(value)}, conf/base has {_kind(base)} ({base!r})")
        elif isinstance(value, dict) and base and path not in open_paths:
            errors += override_errors(value, base, open_paths, f"{path}.")
    return errors
