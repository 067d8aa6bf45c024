"""Split `<context>…</context><think>…</think><answer>…</answer>` text into its parts.

Tolerates what real generations do: tags in any case or with stray spaces, a missing closing tag
(the section then runs to the next section's opening tag), nested repeats of a tag, and text
outside the tags. Every such irregularity is listed in `problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTIONS = ("context", "think", "answer")
_TAG = re.compile(r"<\s*(/?)\s*(context|think|answer)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class _Tag:
    name: str
    closing: bool
    start: int
    end: int


@dataclass
class TaggedOutput:
    """The parts found; a part is None when its opening tag is absent."""

    context: str | None = None
    thinking: str | None = None
    answer: str | None = None
    problems: list[str] = field(default_factory=list)


def _section(text: str, tags: list[_Tag], name: str) -> tuple[str | None, list[str], tuple[int, int] | None]:
    first = next((i for i, t in enumerate(tags) if t.name == name and not t.closing), None)
    if first is None:
        stray = any(t.name == name for t in tags)
        return None, [f"</{name}> without <{name}>"] if stray else [f"no <{name}> tag"], None
    problems, depth, end = [], 0, None
    for tag in tags[first + 1:]:
        if tag.name != name:
            continue
        if not tag.closing:
            depth += 1
            problems.append(f"nested <{name}>")
        elif depth == 0:
            end = tag
            break
        else:
            depth -= 1
    if end is None:
        problems.append(f"unclosed <{name}>")
        start = tags[first].end
        stop = next((t.start for t in tags[first + 1:] if t.name != name and not t.closing), len(text))
        span = (tags[first].start, stop)
    else:
        start, stop, span = tags[first].end, end.start, (tags[first].start, end.end)
    body = _TAG.sub(" ", text[start:stop]) if problems else text[start:stop]
    return " ".join(body.split()), problems, span


def extract(text: str) -> TaggedOutput:
    """Extract context, thinking and answer from a tagged generation."""
    tags = [_Tag(m.group(2).lower(), bool(m.group(1)), m.start(), m.end()) for m in _TAG.finditer(text)]
    out = TaggedOutput()
    spans = []
    for name in SECTIONS:
        value, problems, span = _section(text, tags, name)
        setattr(out, "thinking" if name == "think" else name, value)
        out.problems += problems
        if span:
            spans.append(span)
    outside = text
    for start, stop in sorted(spans, reverse=True):
        outside = outside[:start] + outside[stop:]
    if _TAG.sub("", outside).strip():
        out.problems.append("text outside the tags")
    return out
