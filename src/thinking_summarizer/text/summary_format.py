"""The markdown form of a `Summary`: what the student learns to write, and its parser.

An object is one line with its SAM3 prompt, `- <description> | <prompt>`, so one prompt per object holds by
construction; its category is written (`- <category>: <description> | <prompt>`) only when the description's
own noun does not already name it (`implied_category`): a model never states a category that its description
contradicts. `render(parse(text, lookup), lookup) == text` for any text `render` produced; `parse` raises
`SummaryParseError` naming the line that broke. `lookup` is `category_lookup(vocabulary)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.schemas import Row, Summary, VisualObject, field_errors
from thinking_summarizer.schemas.params.shared import SummaryQC, Vocabulary

KEY_POINTS = "## Key points"
OBJECTS = "## Visual objects"
EMOTIONS = "## Emotion indicators"
PRIMARY = "Primary Objects:"
SECONDARY = "Secondary Objects:"
NONE_ITEM = "- none"
PROMPT_MARK = " | "
# C0/C1 controls other than tab and newline, and the bidirectional overrides and isolates (text that reads
# differently from how it is stored): never in a summary (a regex character range)
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
SECTIONS = (KEY_POINTS, OBJECTS, EMOTIONS)

_NUMBERED = re.compile(r"^(\d+)\. (.+)$")
_EXPLICIT = re.compile(r"^([a-z][a-z -]{0,24}): (.+)$", flags=re.IGNORECASE)  # a category of up to three words
_WORDS = re.compile(r"[a-z][a-z'-]*")


class SummaryParseError(ValueError):
    """A summary text that does not follow the format; `line_no` is 1-based (0: whole text)."""

    def __init__(self, line_no: int, line: str, reason: str):
        self.line_no, self.line, self.reason = line_no, line, reason
        where = f"line {line_no} ({line!r})" if line_no else "summary"
        super().__init__(f"{where}: {reason}")


def category_lookup(vocabulary: Vocabulary) -> dict[str, str]:
    """Every accepted word (category or synonym, lower case) mapped to its standard category."""
    lookup = {c: c for c in vocabulary.categories}
    for category, words in vocabulary.synonyms.items():
        lookup.update({w.lower(): category for w in words})
    return lookup


def implied_category(description: str, lookup: Mapping[str, str]) -> str | None:
    """The category of the first vocabulary noun in a description ("the hands of the man" -> hand), or None."""
    words = _WORDS.findall(description.lower())
    for i, word in enumerate(words):
        for candidate in (" ".join(words[i:i + 2]), word, word.removesuffix("'s"), word.removesuffix("s"),
                          word.removesuffix("es")):
            if candidate in lookup:
                return lookup[candidate]
    return None


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


def render(summary: Summary, lookup: Mapping[str, str]) -> str:
    """Render a summary as markdown, primary objects first, each with its SAM3 prompt."""
    summary = ordered(summary)

    def bullets(items: list[str]) -> list[str]:
        return [f"- {item}" for item in items] or [NONE_ITEM]

    def line(obj: VisualObject, prompt: str) -> str:
        named = "" if implied_category(obj.description, lookup) == obj.category else f"{obj.category}: "
        return f"{named}{obj.description}{PROMPT_MARK}{prompt}"

    pairs = list(zip(summary.objects, summary.sam3_prompts, strict=True))
    primary = [line(o, p) for o, p in pairs if o.priority == "primary"]
    secondary = [line(o, p) for o, p in pairs if o.priority != "primary"]
    lines = [KEY_POINTS, *(f"{i}. {p}" for i, p in enumerate(summary.key_points, 1)), ""]
    lines += [OBJECTS, PRIMARY, *bullets(primary), SECONDARY, *bullets(secondary), ""]
    lines += [EMOTIONS, *bullets(summary.emotion_indicators)]
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


def object_line(text: str, lookup: Mapping[str, str]) -> tuple[str | None, str, str | None]:
    """(category, description, prompt) of an object line's text after "- "; category None when the line names
    none and the description implies none, prompt None without a " | "."""
    body, mark, prompt = text.rpartition(PROMPT_MARK)
    body, prompt = (body, prompt.strip()) if mark else (text, None)
    if explicit := _EXPLICIT.match(body):
        return explicit.group(1).strip().lower(), explicit.group(2).strip(), prompt
    return implied_category(body, lookup), body.strip(), prompt


def _objects(body: list[tuple[int, str]], lookup: Mapping[str, str]) -> tuple[list[VisualObject], list[str]]:
    found: list[VisualObject] = []
    prompts: list[str] = []
    priority = None
    for no, text in body:
        if text in (PRIMARY, SECONDARY):
            priority = "primary" if text == PRIMARY else "secondary"
        elif priority is None:
            raise SummaryParseError(no, text, f"object before {PRIMARY!r}")
        elif text != NONE_ITEM:
            if not text.startswith("- "):
                raise SummaryParseError(no, text, "expected '- <description> | <SAM3 prompt>'")
            category, description, prompt = object_line(text[2:], lookup)
            if category is None:
                raise SummaryParseError(no, text, "no category: write '- <category>: <description> | ...'")
            if not prompt:
                raise SummaryParseError(no, text, f"no SAM3 prompt after {PROMPT_MARK.strip()!r}")
            found.append(VisualObject(category=category, description=description, priority=priority))
            prompts.append(prompt)
    return found, prompts


def parse_lenient(text: str, lookup: Mapping[str, str]) -> Row:
    """What the sections of a possibly malformed summary hold (unknown sections, stray lines and wrong counts
    are skipped, not raised), so that content can be scored even when `parse` rejects the text; an object with
    no category keeps its description under category "" (it matches nothing)."""
    out: Row = {"key_points": [], "objects": [], "emotion_indicators": [], "sam3_prompts": []}
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
        elif section == OBJECTS and line.startswith("- "):
            category, description, prompt = object_line(line[2:], lookup)
            out["objects"].append({"category": category or "", "description": description, "priority": priority,
                                   "prompt": prompt or ""})
            if prompt:
                out["sam3_prompts"].append(prompt)
        elif section == EMOTIONS and line.startswith("- "):
            out["emotion_indicators"].append(line[2:].strip())
    return out


def parse(text: str, lookup: Mapping[str, str]) -> Summary:
    """Parse the markdown form back into a `Summary`, or raise `SummaryParseError`."""
    sections = _split_sections(text.splitlines())
    objects, prompts = _objects(sections[OBJECTS], lookup)
    try:
        return Summary(
            key_points=_key_points(sections[KEY_POINTS]),
            objects=objects,
            emotion_indicators=_bullets(sections[EMOTIONS]),
            sam3_prompts=prompts,
        )
    except ValidationError as err:
        field, message = field_errors(err, "summary")[0]
        raise SummaryParseError(0, "", f"{field}: {message}") from err


def _literal(text: str) -> str:
    """Text as a regex that matches it, escaping only what is special (grammar engines reject `\\#`, `\\ `)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def format_regex(qc: SummaryQC, lookup: Mapping[str, str]) -> str:
    """A regular expression matching the rendered summaries that `parse` and QC accept in form: the counts of the
    `Summary` schema, item lengths and the indicator count from `summary_qc`, and an object line that names its
    category or has a description with a vocabulary noun in it. The grammar a student's decoder is held to."""
    max_chars, max_emotion_indicators = qc.max_chars, qc.max_emotion_indicators
    limits = {m.__class__.__name__: m for m in Summary.model_fields["objects"].metadata}
    fewest, most = limits["MinLen"].min_length, limits["MaxLen"].max_length
    side = max_chars.description // 2
    text, item = rf"[^\n\r|{CONTROL_CHARACTERS}]", rf"[^\n\r{CONTROL_CHARACTERS}]"  # in an object line; elsewhere
    nouns = "|".join(_literal(w) for w in sorted(lookup, key=len, reverse=True))
    categories = "|".join(_literal(c) for c in sorted(set(lookup.values()), key=len, reverse=True))
    implied = rf"(?:{text}{{0,{side}}} )?(?:{nouns})(?:e?s)?(?:'s)?(?:[ ,.;']{text}{{0,{side}}})?"
    named = rf"(?:{categories}): {text}{{1,{max_chars.description}}}"
    obj = rf"- (?:{named}|{implied}) \| {text}{{1,{max_chars.sam3_prompt}}}\n"
    splits = []
    for primary in range(1, most + 1):
        low, high = max(0, fewest - primary), most - primary
        secondary = rf"(?:{obj}){{{max(low, 1)},{high}}}" if high else ""
        none = r"- none\n" if low == 0 else ""
        body = f"(?:{none}|{secondary})" if none and secondary else none or secondary
        splits.append(rf"(?:{obj}){{{primary}}}{_literal(SECONDARY)}\n{body}")
    point = rf"{item}{{1,{max_chars.key_point}}}"
    cue = rf"- {item}{{1,{max_chars.emotion_indicator}}}"
    return (rf"{_literal(KEY_POINTS)}\n1\. {point}\n2\. {point}\n3\. {point}\n\n"
            rf"{_literal(OBJECTS)}\n{_literal(PRIMARY)}\n(?:{'|'.join(splits)})\n"
            rf"{_literal(EMOTIONS)}\n(?:- none|(?:{cue}\n){{0,{max_emotion_indicators - 1}}}{cue})")
