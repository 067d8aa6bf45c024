"""Source formats: each public dataset's own record shape mapped onto HumanOmniV2's schema.

A format is one small adapter (`SourceFormat`) plus its name in `FORMATS`; `data_sampling.sources.<name>.format`
picks one, or `auto` recognises it from the record's keys.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class SourceFormat:
    """How to read one dataset's records.

    `keys`: keys only this format uses (a record with any of them is taken as this format); `convert`: native record -> HumanOmniV2-schema record;
    `native_field`: schema field -> the native key a reject should name.
    """

    name: str
    keys: frozenset[str]
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    native_field: dict[str, str] = field(default_factory=dict)


def _options(value: Any) -> Any:
    """Options as a list; some copies store the list's Python/JSON text (`"['A. x', 'B. y']"`)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return value
        return list(parsed) if isinstance(parsed, (list, tuple)) else value
    return value


def _answer(value: Any) -> Any:
    """A list of letters (`["A", "C"]`) becomes HumanOmniV2's `"A,C"`."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(v.strip() for v in value)
    return value


def _humanomni(raw: dict[str, Any]) -> dict[str, Any]:
    record = dict(raw)
    if "options" in record:
        record["options"] = _options(record["options"])
    if "answer" in record:
        record["answer"] = _answer(record["answer"])
    return record


DAILY_OMNI_METADATA = ("Type", "video_category", "video_duration", "content_parent_category", "content_fine_category")


def _daily_omni(raw: dict[str, Any]) -> dict[str, Any]:
    """Daily-Omni `qa.json`: several questions per video, the video at `<video_id>/<video_id>_video.mp4`."""
    video_id = raw.get("video_id")
    return {
        "problem": raw.get("Question"),
        "problem_type": "multiple choice",
        "options": _options(raw.get("Choice", [])),
        "answer": _answer(raw.get("Answer")),
        "data_type": "video",
        "video": f"{video_id}/{video_id}_video.mp4" if isinstance(video_id, str) and video_id else None,
        "metadata": {k: str(raw[k]) for k in DAILY_OMNI_METADATA if raw.get(k) is not None},
    }


FORMATS: dict[str, SourceFormat] = {
    "humanomni": SourceFormat("humanomni", frozenset({"problem", "problem_type", "solution"}), _humanomni),
    "daily_omni": SourceFormat(
        "daily_omni", frozenset({"Question", "Choice", "Answer", "video_id"}), _daily_omni,
        {"problem": "Question", "options": "Choice", "answer": "Answer", "video": "video_id"},
    ),
}


def detect(raw: dict[str, Any]) -> SourceFormat | None:
    """The format sharing the most identifying keys with the record, or None when none shares any."""
    best = max(FORMATS.values(), key=lambda f: len(f.keys & raw.keys()))
    return best if best.keys & raw.keys() else None


def resolve(name: str, raw: dict[str, Any]) -> SourceFormat | None:
    """The configured format, or the detected one for `auto`."""
    return detect(raw) if name == AUTO else FORMATS[name]
