"""Whether a chain denies or only imagines what it mentions ("not agitated", "I'd expect a furrowed brow ... but
I'm not seeing any"): one rule for the extractive teacher, which keeps no such cue, and the label check, which
counts those a teacher kept. The words are `teacher_labeling.extractive.negations` in conf."""

from __future__ import annotations

import re

from thinking_summarizer.schemas.params.teacher import Negations as NegationWords


class Negations:
    """A negation or hypothetical earlier in the mention's clause (`before`), or a denial right after it (`after`:
    patterns anchored at the mention's end)."""

    def __init__(self, cfg: NegationWords):
        words = cfg.before
        contracted = "|".join(re.escape(w) for w in words if w.startswith("n'"))  # "n't" ends "don't", "isn't"
        plain = "|".join(re.escape(w) for w in sorted((w for w in words if not w.startswith("n'")), key=len,
                                                      reverse=True))
        self.before = re.compile(rf"\b(?:{plain})\b" + (rf"|(?<=\w)(?:{contracted})\b" if contracted else ""),
                                 re.IGNORECASE)
        self.after = re.compile("|".join(cfg.after), re.IGNORECASE)

    def denied(self, text: str, start: int, end: int) -> bool:
        """Whether the mention `text[start:end]` is denied or only imagined."""
        clause = max(text.rfind(c, 0, start) for c in ",;:.!?") + 1
        return bool(self.before.search(text[clause:start]) or self.after.search(text[end:]))
