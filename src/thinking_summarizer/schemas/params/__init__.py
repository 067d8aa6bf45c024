"""Every parameter section as a pydantic model. A node's type hint (`cfg: LoraTraining` for
`params:lora_training`) makes Kedro hand it the validated model; `parameter_errors` checks the whole tree before
any node runs."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.schemas.params.base import Section
from thinking_summarizer.schemas.params.data import DataSampling, DatasetBuild, DemoData
from thinking_summarizer.schemas.params.evaluation import Evaluation
from thinking_summarizer.schemas.params.segmentation import VideoSegmentation
from thinking_summarizer.schemas.params.shared import (
    ClientPolicy, ParameterCheck, Preflight, StudentInference, SummaryQC, Tracking, Vocabulary,
)
from thinking_summarizer.schemas.params.teacher import TeacherLabeling
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration
from thinking_summarizer.schemas.params.tiny import TinyModels
from thinking_summarizer.schemas.params.training import LoraTraining
from thinking_summarizer.schemas.records import field_errors


class RunParams(Section):
    """The whole `parameters` tree of a run."""

    summary_qc: SummaryQC
    vocabulary: Vocabulary
    tracking: Tracking
    openai_client: ClientPolicy
    parameter_check: ParameterCheck
    preflight: Preflight
    student_inference: StudentInference
    data_sampling: DataSampling
    demo_data: DemoData
    dataset_build: DatasetBuild
    thinking_generation: ThinkingGeneration
    teacher_labeling: TeacherLabeling
    lora_training: LoraTraining
    evaluation: Evaluation
    video_segmentation: VideoSegmentation
    tiny_models: TinyModels


def parameter_errors(params: dict[str, Any]) -> tuple[RunParams | None, list[str]]:
    """The run's parameters as `RunParams`, or every problem in them, each naming its dotted key."""
    try:
        return RunParams.model_validate(params), []
    except ValidationError as err:
        return None, [f"{field}: {message.removeprefix('Value error, ')}"
                      for field, message in field_errors(err, "(parameters)")]


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
