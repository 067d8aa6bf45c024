"""The markdown form of a `Summary`: what the student learns to write, and its parser.

`render(parse(text)) == text` for any text `render` produced; `parse` raises
`SummaryParseError` naming the line that broke.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.schemas import Summary, VisualObject, field_errors

KEY_POINTS = "## Key points"
OBJECTS = "## Visual objects"
EMOTIONS = "## Emotion indicators"
PROMPTS = "## SAM3 prompts"
PRIMARY = "Primary Objects:"
SECONDARY = "Secondary Objects:"
NONE_ITEM = "- none"
SECTIONS = (KEY_POINTS, OBJECTS, EMOTIONS, PROMPTS)

_NUMBERED = re.compile(r"^(\d+)\. (.+)$")
_OBJECT = re.compile(r"^- ([^:]+): (.+)$")


class SummaryParseError(ValueError):
    """A summary text that does not follow the format; `line_no` is 1-based (0: whole text)."""

    def __init__(self, line_no: int, line: str, reason: str):
        self.line_no, self.line, self.reason = line_no, line, reason
        where = f"line {line_no} ({line!r})" if line_no else "summary"
        super().__init__(f"{where}: {reason}")


def primary_first(items: list[tuple[str, Any]]) -> list[Any]:
    """The items of (priority, item) pairs, primary ones first, order otherwise kept: the one rule for objects
    and SAM3 prompts everywhere."""
    return [item for _, item in sorted(items, key=lambda pair: pair[0] != "primary")]


def ordered(summary: Summary) -> Summary:
    """The same summary with primary objects (and their prompts) first, order otherwise kept."""
    pairs = primary_first([(o.priority, (o, p)) for o, p in zip(summary.objects, summary.sam3_prompts, strict=True)])
    return summary.model_copy(
        update={"objects": [o for o, _ in pairs], "sam3_prompts": [p for _, p in pairs]}
    )


def render(summary: Summary) -> str:
    """Render a summary as markdown, primary objects first."""
    summary = ordered(summary)

    def bullets(items: list[str]) -> list[str]:
        return [f"- {item}" for item in items] or [NONE_ITEM]

    def objects(items: list[VisualObject]) -> list[str]:
        return bullets([f"{o.category}: {o.description}" for o in items])

    lines = [KEY_POINTS, *(f"{i}. {p}" for i, p in enumerate(summary.key_points, 1)), ""]
    lines += [OBJECTS, PRIMARY, *objects(summary.primary), SECONDARY, *objects(summary.secondary), ""]
    lines += [EMOTIONS, *bullets(summary.emotion_indicators), ""]
    lines += [PROMPTS, *bullets(summary.sam3_prompts)]
    return "\n".join(lines)


def _split_sections(lines: list[str]) -> dict[str, list[tuple[int, str]]]:
    sections: dict[str, list[tuple[int, str]]] = {}
    current: str | None = None
    for no, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("## "):
            if text not in SECTIONS:
                raise SummaryParseError(no, line, f"unknown section; expected one of {SECTIONS}")
            if text in sections:
                raise SummaryParseError(no, line, "section appears twice")
            current = text
            sections[current] = []
        elif text:
            if current is None:
                raise SummaryParseError(no, line, f"text before the first section {KEY_POINTS!r}")
            sections[current].append((no, text))
    for name in SECTIONS:
        if name not in sections:
            raise SummaryParseError(0, "", f"missing section {name!r}")
    return sections


def _bullets(body: list[tuple[int, str]]) -> list[str]:
    items = []
    for no, text in body:
        if not text.startswith("- "):
            raise SummaryParseError(no, text, "expected a '- ' bullet")
        items.append(text[2:].strip())
    return [] if items == ["none"] else items


def _key_points(body: list[tuple[int, str]]) -> list[str]:
    points = []
    for no, text in body:
        match = _NUMBERED.match(text)
        if not match or int(match.group(1)) != len(points) + 1:
            raise SummaryParseError(no, text, f"expected key point '{len(points) + 1}. ...'")
        points.append(match.group(2).strip())
    return points


def _objects(body: list[tuple[int, str]]) -> list[VisualObject]:
    found: list[VisualObject] = []
    priority = None
    for no, text in body:
        if text in (PRIMARY, SECONDARY):
            priority = "primary" if text == PRIMARY else "secondary"
        elif priority is None:
            raise SummaryParseError(no, text, f"object before {PRIMARY!r}")
        elif text != NONE_ITEM:
            match = _OBJECT.match(text)
            if not match:
                raise SummaryParseError(no, text, "expected '- category: description'")
            found.append(
                VisualObject(category=match.group(1), description=match.group(2), priority=priority)
            )
    return found


def parse_lenient(text: str) -> dict[str, Any]:
    """What the sections of a possibly malformed summary hold (unknown sections, stray lines and wrong counts
    are skipped, not raised), so that content can be scored even when `parse` rejects the text."""
    out: dict[str, Any] = {"key_points": [], "objects": [], "emotion_indicators": [], "sam3_prompts": []}
    section, priority = None, "primary"
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("## "):
            section = line
        elif not line or line == NONE_ITEM:
            continue
        elif section == KEY_POINTS and (numbered := _NUMBERED.match(line)):
            out["key_points"].append(numbered.group(2).strip())
        elif section == OBJECTS and line in (PRIMARY, SECONDARY):
            priority = "primary" if line == PRIMARY else "secondary"
        elif section == OBJECTS and (obj := _OBJECT.match(line)):
            out["objects"].append({"category": obj.group(1).strip().lower(), "description": obj.group(2).strip(),
                                   "priority": priority})
        elif section in (EMOTIONS, PROMPTS) and line.startswith("- "):
            out["emotion_indicators" if section == EMOTIONS else "sam3_prompts"].append(line[2:].strip())
    return out


def parse(text: str) -> Summary:
    """Parse the markdown form back into a `Summary`, or raise `SummaryParseError`."""
    sections = _split_sections(text.splitlines())
    try:
        return Summary(
            key_points=_key_points(sections[KEY_POINTS]),
            objects=_objects(sections[OBJECTS]),
            emotion_indicators=_bullets(sections[EMOTIONS]),
            sam3_prompts=_bullets(sections[PROMPTS]),
        )
    except ValidationError as err:
        field, message = field_errors(err, "summary")[0]
        raise SummaryParseError(0, "", f"{field}: {message}") from err
