"""Quality control of a summary from any producer: normalise, then accept or reject with a reason."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.schemas import Row, Summary, field_errors
from thinking_summarizer.schemas.params.shared import MaxChars, SummaryQC, Vocabulary
from thinking_summarizer.text.summary_format import CONTROL_CHARACTERS, SummaryParseError, category_lookup, parse


class SummaryQCError(ValueError):
    """A summary that fails QC; `reason` is a short code for reports, the message says why."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# text quoted from the chain ('Ah? I...', "['Happy']") is what someone said, never a placeholder
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|‘[^’\n]*’|(?<![\w'])'[^'\n]*'(?![\w'])")


def find_placeholders(value: Any, patterns: list[str]) -> list[str]:
    """Placeholder fragments such as `[color]` or `TBD` in any string inside `value`, outside quotes."""
    return [m.group(0) for text in _strings(value) for p in patterns
            for m in re.finditer(p, _QUOTED.sub("", text), flags=re.IGNORECASE)]


def _as_data(answer: str | Row, lookup: dict[str, str]) -> Row:
    if isinstance(answer, dict):
        return answer
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json|markdown)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    text = fenced.group(1) if fenced else text
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise SummaryQCError("invalid_json", f"{err.msg} at char {err.pos}") from err
        except RecursionError as err:  # a paid, complete answer: rejected like any bad one (and cached so)
            raise SummaryQCError("invalid_json", "nested deeper than a summary can be") from err
    try:
        return parse(text, lookup).model_dump()
    except SummaryParseError as err:
        raise SummaryQCError("malformed", str(err)) from err


_BAD_CHARACTERS = re.compile(f"[{CONTROL_CHARACTERS}]")
FIELD_LIMITS = {"key_points": "key_point", "emotion_indicators": "emotion_indicator", "sam3_prompts": "sam3_prompt"}


def content_words(description: str, empty_words: list[str]) -> list[str]:
    """The words of a description that name something: "a man" has one (man), "the one on it" none."""
    return [w for w in re.findall(r"[a-z][a-z'-]*", description.lower()) if w not in set(empty_words)]


def _check_sizes(summary: Summary, limits: MaxChars) -> None:
    for field, name in FIELD_LIMITS.items():
        for index, text in enumerate(getattr(summary, field)):
            if len(text) > getattr(limits, name):
                raise SummaryQCError("too_long", f"{field}[{index}]: {len(text)} chars > {getattr(limits, name)}")
    for index, obj in enumerate(summary.objects):
        if len(obj.description) > limits.description:
            raise SummaryQCError("too_long", f"objects[{index}].description: {len(obj.description)} chars > "
                                             f"{limits.description}")


def check_summary(answer: str | Row, vocabulary: Vocabulary, qc: SummaryQC) -> Summary:
    """Parse (JSON or markdown), normalise categories and enforce every QC rule, or raise `SummaryQCError`."""
    if isinstance(answer, str) and len(answer) > qc.max_answer_chars:
        raise SummaryQCError("oversized", f"{len(answer)} chars > {qc.max_answer_chars}; not parsed")
    lookup = category_lookup(vocabulary)
    data = _as_data(answer, lookup)
    if not isinstance(data, dict):
        raise SummaryQCError("malformed", f"the answer is a JSON {type(data).__name__}, not an object")
    bad = sorted({f"U+{ord(c):04X}" for text in _strings(data) for c in _BAD_CHARACTERS.findall(text)})
    if bad:
        raise SummaryQCError("bad_characters", f"control or bidirectional characters {bad[:5]}")
    found = find_placeholders(data, qc.placeholder_patterns)
    if found:
        raise SummaryQCError("placeholder", f"placeholder text {sorted(set(found))}")
    for obj in data.get("objects") or []:
        if isinstance(obj, dict) and isinstance(obj.get("category"), str):
            word = obj["category"].strip().lower()
            if word not in lookup:
                raise SummaryQCError("unknown_category", f"category {word!r} is not in the vocabulary")
            obj["category"] = lookup[word]
    if isinstance(data.get("emotion_indicators"), list):
        data["emotion_indicators"] = data["emotion_indicators"][: qc.max_emotion_indicators]
    try:
        summary = Summary.model_validate(data)
    except ValidationError as err:
        field, message = field_errors(err, "summary")[0]
        raise SummaryQCError("schema", f"{field}: {message}") from err
    for obj in summary.objects:
        if not content_words(obj.description, qc.empty_description_words):
            raise SummaryQCError("short_description", f"{obj.category}: {obj.description!r} names nothing")
    if any(not p.strip() for p in summary.sam3_prompts):
        raise SummaryQCError("empty_prompt", "a SAM3 prompt is empty")
    _check_sizes(summary, qc.max_chars)
    return summary
