"""An offline teacher: deterministic extraction of people, objects and emotion cues from a thinking.

It is the default run's teacher and the evaluation baseline. Sentences that rule something out
("no dog is visible", "only heard") contribute nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from thinking_summarizer.summary_qc import SummaryQCError, category_lookup, check_summary
from thinking_summarizer.teachers import LabelOutcome


@dataclass
class _Found:
    category: str
    noun: str
    description: str
    prompt: str
    priority: str
    key: str
    order: int


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


class ExtractiveTeacher:
    """Summaries by pattern extraction; `model_id` names it in outputs."""

    model_id = "extractive-v1"
    prompt_version = "patterns"

    def __init__(self, cfg: dict[str, Any], vocabulary: dict[str, Any], qc: dict[str, Any]):
        self.cfg, self.vocabulary, self.qc = cfg, vocabulary, qc
        lookup = category_lookup(vocabulary)
        self.gender = {w: g for g, words in cfg["genders"].items() for w in words}
        person_words = [w for w, c in lookup.items() if c == "person"] + list(self.gender)
        thing_words = [w for w, c in lookup.items() if c not in {"person", "face", "hand"}]
        self.category = lookup | {w: "person" for w in person_words}
        colour, garment = _alternation(cfg["colours"]), _alternation(cfg["garments"])
        self.person_re = re.compile(
            rf"\b(?:a|an|the|this|that|another)\s+(?:(?P<age>{_alternation(cfg['person_ages'])})\s+)?"
            rf"(?P<noun>{_alternation(person_words)})(?:\s+character)?\b"
            rf"(?:\s+(?:in|wearing)\s+(?:a|an|the)?\s*(?P<colour>{colour})?\s*(?P<modifier>[\w']+\s+)??"
            rf"(?P<garment>{garment}))?",
            re.IGNORECASE,
        )
        self.thing_re = re.compile(
            rf"\b(?:a|an|the|his|her|their)\s+(?:(?P<colour>{colour})\s+)?(?:(?P<material>"
            rf"{_alternation(cfg['materials'])})\s+)?(?P<noun>{_alternation(thing_words)})\b",
            re.IGNORECASE,
        )
        self.position_re = re.compile(_alternation(cfg["positions"]), re.IGNORECASE)
        self.detail_re = re.compile(
            rf"\s+(?:{_alternation(cfg['detail_openers'])})\b(?:\s+[\w'-]+){{1,4}}?(?=\s*(?:[,.;!?]|$|\s+(?:and|but|which|who|that)\b))",
            re.IGNORECASE,
        )
        self.pose_re = re.compile(rf"\b(?:{_alternation(cfg['poses'])})\b", re.IGNORECASE)
        self.ruled_out = [re.compile(p, re.IGNORECASE) for p in cfg["ruled_out_patterns"]]
        self.face_re = re.compile(rf"\b(?:{_alternation(cfg['face_words'])})\b", re.IGNORECASE)
        self.hand_re = re.compile(rf"\b(?:{_alternation(cfg['hand_words'])})\b", re.IGNORECASE)
        self.cue_re = re.compile(rf"\b(?:{_alternation(cfg['emotion_cues'])})\b", re.IGNORECASE)
        self.emotion_re = re.compile(rf"\b(?:{_alternation(cfg['emotions'])})\b", re.IGNORECASE)

    def _kept(self, sentence: str) -> bool:
        return not any(p.search(sentence) for p in self.ruled_out)

    def _position(self, sentence: str, start: int) -> str:
        match = self.position_re.search(sentence, start)
        return f" {match.group(0).lower()}" if match else ""

    def _detail(self, sentence: str, start: int) -> str:
        """Position if stated, else the short phrase that follows the noun ("with a tense face")."""
        where = self._position(sentence, start)
        if where:
            return where
        match = self.detail_re.match(sentence, start)
        return f" {match.group(0).strip().lower()}" if match else ""

    def _pose(self, sentence: str) -> str:
        match = self.pose_re.search(sentence)
        return f", {match.group(0).lower()}" if match else ""

    def _people(self, sentences: list[str]) -> list[_Found]:
        people: dict[str, _Found] = {}
        for s_index, sentence in enumerate(sentences):
            for m in self.person_re.finditer(sentence):
                noun = m.group("noun").lower()
                gender = self.gender.get(noun, "person")
                colour = (m.group("colour") or "").lower()
                same = [k for k in people if (k.startswith(f"{gender}/") and (not colour or k.endswith(f"/{colour}")))
                        or (gender == "person" and not colour)]
                age = f"{m.group('age').lower()} " if m.group("age") else ""
                garment = m.group("garment")
                modifier = (m.group("modifier") or "").lower()
                clothing = f" in a {colour + ' ' if colour else ''}{modifier}{garment.lower()}" if garment else ""
                article = "an" if (age or noun)[0] in "aeiou" else "a"
                description = f"{article} {age}{noun}{clothing}{self._detail(sentence, m.end()) or self._pose(sentence)}"
                if same:  # a later mention of someone already found, or a role noun ("the doctor")
                    known = people[same[0]]
                    if known.noun == noun and len(description) > len(known.description):
                        known.description = description
                    continue
                people[f"{gender}/{colour}"] = _Found(
                    "person", noun, description, f"{noun}{clothing.replace(' in a ', ' in ')}", "primary",
                    f"{gender}/{colour}", s_index * 1000 + m.start(),
                )
        return sorted(people.values(), key=lambda p: p.order)[: self.cfg["max_people"]]

    def _things(self, sentences: list[str]) -> list[_Found]:
        things: dict[str, _Found] = {}
        for s_index, sentence in enumerate(sentences):
            for m in self.thing_re.finditer(sentence):
                noun = m.group("noun").lower()
                colour = f"{m.group('colour').lower()} " if m.group("colour") else ""
                material = f"{m.group('material').lower()} " if m.group("material") else ""
                key = f"{self.category[noun]}/{colour}"
                if key in things or any(k.startswith(f"{self.category[noun]}/") and not colour for k in things):
                    continue
                article = "an" if (colour or material or noun)[0] in "aeiou" else "a"
                things[key] = _Found(
                    self.category[noun], noun, f"{article} {colour}{material}{noun}{self._detail(sentence, m.end())}",
                    f"{colour}{noun}", "secondary", key, s_index * 1000 + m.start(),
                )
        return sorted(things.values(), key=lambda t: t.order)

    def _body_parts(self, sentences: list[str], subject: _Found | None) -> tuple[list[_Found], list[_Found]]:
        if subject is None:
            return [], []
        text = " ".join(sentences)
        face = [_Found("face", "face", f"the face of {subject.description.split(' in the ')[0]}",
                       f"{subject.noun}'s face", "primary", "face", 0)] if self.face_re.search(text) else []
        hand = [_Found("hand", "hand", f"the hands of {subject.description.split(' in the ')[0]}",
                       f"{subject.noun}'s hand", "secondary", "hand", 0)] if self.hand_re.search(text) else []
        return face, hand

    def _key_points(self, sentences: list[str], kept: list[str], subject: _Found | None) -> list[str]:
        limit = self.cfg["key_point_chars"]

        def short(sentence: str) -> str:
            return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "."

        opening = next((s for s in kept if subject and subject.noun in s.lower()), kept[0] if kept else "")
        cues = max((s for s in kept if s != opening), key=lambda s: len(self.cue_re.findall(s)), default="")
        markers = self.cfg["conclusion_markers"]
        ending = next((s for s in reversed(sentences) if any(m in s.lower() for m in markers)
                       and s not in (opening, cues)), sentences[-1] if sentences else "")
        return [short(s) for s in (opening, cues, ending)]

    def summarize(self, thinking: str) -> dict[str, Any]:
        """A summary as a plain dict (the QC step validates and normalises it)."""
        sentences = _sentences(thinking)
        kept = [s for s in sentences if self._kept(s)]
        people = self._people(kept)
        subject = people[0] if people else None
        face, hand = self._body_parts(kept, subject)
        candidates = people + face + self._things(kept) + hand
        # a bare mention ("a bed") says nothing SAM3 can use about appearance or position: leave it out
        candidates = [o for o in candidates if len(o.description) > self.qc["min_description_chars"]]
        objects = candidates[: self.cfg["max_objects"]]
        cues = list(dict.fromkeys(m.group(0).lower() for s in kept for m in self.cue_re.finditer(s)))
        emotions = list(dict.fromkeys(m.group(0).lower() for m in self.emotion_re.finditer(
            next((s for s in reversed(kept) if any(k in s.lower() for k in self.cfg["conclusion_markers"])), ""))))
        return {
            "key_points": self._key_points(sentences, kept, subject),
            "objects": [{"category": o.category, "description": o.description, "priority": o.priority} for o in objects],
            "emotion_indicators": (cues + emotions)[:6],
            "sam3_prompts": [o.prompt for o in objects],
        }

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        """Summarise and QC each thinking."""
        outcomes = []
        for sample_id, thinking in items:
            try:
                summary = check_summary(self.summarize(thinking), self.vocabulary, self.qc)
                outcomes.append(LabelOutcome(sample_id, "labelled", summary.model_dump()))
            except SummaryQCError as err:
                outcomes.append(LabelOutcome(sample_id, "rejected", reason=err.reason, detail=err.detail))
        return outcomes
