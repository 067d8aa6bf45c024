"""A quality check of a teacher's labels against their chains: what a person reading them would not keep.

It judges any teacher's summaries (a served LLM's as much as the extractive one's) and never rejects one: the
counts go into teacher_labeling's report and the run summary, with a few sample ids per check to read.
"""

from __future__ import annotations

import re

from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import Vocabulary
from thinking_summarizer.schemas.params.teacher import Extractive
from thinking_summarizer.text.negation import Negations
from thinking_summarizer.text.summary_format import category_lookup
from thinking_summarizer.text.summary_qc import content_words

_WORD = re.compile(r"[a-z][a-z'-]*")
_SENTENCE_END = tuple('.!?"\')”')
CHECKS = ("cut_key_points", "duplicate_key_points", "boilerplate_key_points", "negated_indicators",
          "people_without_person_object", "ungrounded_objects")


class LabelChecker:
    """The checks, compiled once from conf: the narration patterns and negations (`teacher_labeling.extractive`,
    which the extractive teacher avoids with the same words), the person words of the vocabulary, the words that
    name nothing (`summary_qc.empty_description_words`)."""

    def __init__(self, extractive: Extractive, vocabulary: Vocabulary, empty_words: list[str]):
        self.narration = [re.compile(p) for p in extractive.narration_key_points]
        self.negations = Negations(extractive.negations)
        self.lookup = category_lookup(vocabulary)
        self.person_words = sorted((w for w, c in self.lookup.items() if c == "person"), key=len, reverse=True)
        self.empty_words = empty_words

    def _negated(self, chain: str, indicator: str) -> bool:
        """Every mention of the indicator in the chain is denied (or it is never mentioned)."""
        mentions = list(re.finditer(re.escape(indicator.lower()), chain))
        return bool(mentions) and all(self.negations.denied(chain, m.start(), m.end()) for m in mentions)

    def _naming(self, description: str) -> list[str]:
        return content_words(description, self.empty_words)

    def problems(self, summary: Row, thinking: str) -> dict[str, int]:
        """How many items of one summary each check finds."""
        chain = thinking.lower()
        chain_words = set(_WORD.findall(chain))
        points = [p.strip() for p in summary["key_points"]]
        normalised = [" ".join(_WORD.findall(p.lower())) for p in points]
        has_person_word = any(re.search(rf"\b{re.escape(w)}\b", chain) for w in self.person_words)
        has_person = any(self.lookup.get(o["category"].lower(), o["category"].lower()) == "person"
                         for o in summary["objects"])
        return {
            "cut_key_points": sum(not p.endswith(_SENTENCE_END) for p in points),
            "duplicate_key_points": len(normalised) - len(set(normalised)),
            "boilerplate_key_points": sum(any(r.search(p.lower()) for r in self.narration) for p in points),
            "negated_indicators": sum(self._negated(chain, i) for i in summary["emotion_indicators"]),
            "people_without_person_object": int(has_person_word and not has_person),
            "ungrounded_objects": sum(any(w not in chain_words for w in self._naming(o["description"]))
                                      for o in summary["objects"]),
        }


def quality_report(labels: list[Row], thinkings: dict[str, str], checker: LabelChecker,
                   max_examples: int) -> Row:
    """Per check: items found over all labels, and the first `max_examples` sample ids that have any."""
    counts = {check: 0 for check in CHECKS}
    examples: dict[str, list[str]] = {check: [] for check in CHECKS}
    for label in labels:
        for check, found in checker.problems(label["summary"], thinkings[label["sample_id"]]).items():
            counts[check] += found
            if found and len(examples[check]) < max_examples:
                examples[check].append(label["sample_id"])
    return {"labels_checked": len(labels), **counts, "examples": {k: v for k, v in examples.items() if v}}
