"""An offline teacher: deterministic extraction of people, objects, face regions and emotion cues from a thinking.

It is the default run's teacher and the evaluation baseline. Sentences that rule something out ("no dog is
visible", "only heard") contribute nothing; the narration of watching ("I see a man on screen", "the subtitles
show") names no object. Every word list lives in `conf/base/parameters_teacher_labeling.yml`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy, SummaryQC, Vocabulary
from thinking_summarizer.schemas.params.teacher import Extractive, TeacherLabeling
from thinking_summarizer.teachers import LabelOutcome
from thinking_summarizer.text.negation import Negations
from thinking_summarizer.text.summary_format import category_lookup
from thinking_summarizer.text.summary_qc import SummaryQCError, check_summary, content_words

_PRONOUNS = {"male": ("he", "his", "him"), "female": ("she", "her"), "person": ("they", "their", "them")}


@dataclass
class _Found:
    category: str
    noun: str
    description: str
    prompt: str
    priority: str
    key: str
    order: int
    said: str = ""  # what the chain says a face region does ("a bit furrowed")


@dataclass
class _Person:
    noun: str
    gender: str
    order: int
    age: str = ""
    clothing: str = ""
    where: str = ""
    pose: str = ""
    mentioned_at: list[int] = field(default_factory=list)  # sentence index * 1000 + offset of each mention

    @property
    def name(self) -> str:
        """"the old man in a pink sweater": how other objects refer to this person."""
        return f"the {self.age}{self.noun}{self.clothing}"

    def described(self) -> str:
        article = "an" if (self.age or self.noun)[0] in "aeiou" else "a"
        pose = f", {self.pose}" if self.pose and not self.where else ""
        return f"{article} {self.age}{self.noun}{self.clothing}{self.where}{pose}"


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _words(pattern_words: list[str]) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{_alternation(pattern_words)})\b", re.IGNORECASE)


class ExtractiveTeacher:
    """Summaries by pattern extraction; `model_id` names it in outputs."""

    model_id = "extractive-v2"
    prompt_version = "patterns"

    @classmethod
    def from_config(cls, cfg: TeacherLabeling, vocabulary: Vocabulary, qc: SummaryQC,
                    client: ClientPolicy) -> ExtractiveTeacher:
        return cls(cfg.extractive, vocabulary, qc)

    def __init__(self, cfg: Extractive, vocabulary: Vocabulary, qc: SummaryQC):
        self.cfg, self.vocabulary, self.qc = cfg, vocabulary, qc
        lookup = category_lookup(vocabulary)
        self.gender = {w: g for g, words in cfg.genders.items() for w in words}
        self.plural = cfg.plural_people
        person_words = [w for w, c in lookup.items() if c == "person"] + list(self.gender)
        self.region_of = {w: region for region, words in cfg.face_regions.items() for w in words}
        regions = set(cfg.face_regions) | {"face", "hand"}
        thing_words = [w for w, c in lookup.items() if c != "person" and c not in regions]
        self.category = lookup | {w: "person" for w in person_words}
        colour, garment = _alternation(cfg.colours), _alternation(cfg.garments)
        # up to two describing words before the colour ("a beautiful red dress": dropped) and between colour and
        # garment ("red traditional dress": kept), never an article or a preposition that starts a new phrase
        word = rf"(?:(?!(?:{_alternation(cfg.clothing_stop_words)})\b)[\w'-]+\s+)"
        before, between = rf"(?:{word}{{0,2}}?)", rf"(?P<modifier>{word}{{0,2}}?)"
        numbers = _alternation(list(cfg.numbers))
        self.group_re = re.compile(
            rf"\b(?:the\s+)?(?P<count>{numbers})\s+(?:\w+\s+)?(?P<noun>{_alternation(list(self.plural))})\b",
            re.IGNORECASE)
        self.person_re = re.compile(
            rf"\b(?P<det>a|an|the|this|that|another|other|second)\s+(?:(?P<other>other|second)\s+)?"
            rf"(?:(?P<age>{_alternation(cfg.person_ages)})\s+)?"
            rf"(?P<noun>{_alternation(person_words)})(?:\s+character)?\b(?P<across>\s+(?:opposite|across from)\b)?"
            rf"(?:,?\s+(?:in|wearing|dressed in)\s+(?:a|an|the)?\s*{before}(?P<colour>{colour})?\s*{between}"
            rf"(?P<garment>{garment}))?",
            re.IGNORECASE,
        )
        self.worn_re = re.compile(
            rf"\b(?P<owner>his|her|their|wearing|dressed in|in|from the|by the)\s+(?:a|an|the)?\s*{before}"
            rf"(?P<colour>{colour})?\s*{between}(?P<garment>{garment})\b", re.IGNORECASE)
        self.thing_re = re.compile(
            rf"\b(?:a|an|the|his|her|their)\s+(?:(?P<colour>{colour})\s+)?(?:(?P<material>"
            rf"{_alternation(cfg.materials)})\s+)?(?P<noun>{_alternation(thing_words)})\b",
            re.IGNORECASE,
        )
        self.narration = {w.lower() for w in cfg.narration_nouns}
        self.position_re = _words(cfg.positions)
        self.detail_re = re.compile(
            rf"\s+(?:{_alternation(cfg.detail_openers)})\b(?:\s+[\w'-]+){{1,4}}?(?=\s*(?:[,.;!?]|$|\s+(?:and|but|which|who|that)\b))",
            re.IGNORECASE,
        )
        self.pose_re = _words(cfg.poses)
        self.setting_re = re.compile(
            rf"\b(?P<prep>in|at|on)\s+(?:what (?:looks|seems) like\s+|what appears to be\s+)?(?:(?:a|an|the)\s+)?"
            rf"(?:(?P<adj>[\w-]+)\s+)??(?P<place>{_alternation(cfg.settings)})\b", re.IGNORECASE)
        self.ruled_out = [re.compile(p, re.IGNORECASE) for p in cfg.ruled_out_patterns]
        self.spoken_of = {side: re.compile(p, re.IGNORECASE) for side, p in cfg.spoken_of.items()}
        self.watching = [re.compile(p, re.IGNORECASE) for p in cfg.narration_key_points]
        self.face_re = _words(cfg.face_words)
        self.hand_re = _words(cfg.hand_words)
        self.region_re = re.compile(
            rf"\b(?P<owner>his|her|their|the)\s+(?:(?P<before>[\w-]+)\s+)?(?P<part>{_alternation(list(self.region_of))})"
            rf"\b(?:\s+(?:{_alternation(cfg.linking_verbs)})\s+(?P<after>(?:(?!\b(?:and|but|while)\b)[^,.;!?]){{3,60}}))?", re.IGNORECASE)
        self.cue_re = _words(cfg.emotion_cues)
        self.emotion_re = _words(cfg.emotion_lexicon)
        self.negations = Negations(cfg.negations)
        senses = cfg.noun_senses
        self.noun_sense_re = re.compile(
            rf"\b(?:{_alternation(senses.determiners)})\s+(?:{_alternation(senses.words)})\b"
            rf"|\b(?:{_alternation(senses.words)})\s+of\b", re.IGNORECASE)

    def _spoken_of(self, sentence: str, m: re.Match) -> bool:
        """A person only quoted, not seen: "what the other person said"."""
        return bool(self.spoken_of["before"].search(sentence[:m.start()])
                    and self.spoken_of["after"].search(sentence[m.end("noun"):]))

    def _kept(self, sentence: str) -> bool:
        return not any(p.search(sentence) for p in self.ruled_out)

    def _position(self, sentence: str, start: int) -> str:
        match = self.position_re.search(sentence, start)
        return f" {match.group(0).lower()}" if match else ""

    def _setting(self, sentence: str, start: int) -> str:
        """Where the person is, when the same sentence says so: " in an office", " in bed"."""
        match = self.setting_re.search(sentence, start)
        if not match:
            return ""
        place = f"{match.group('adj').lower()} {match.group('place').lower()}" if match.group("adj") else \
            match.group("place").lower()
        article = "" if place in self.cfg.settings_without_article else ("an " if place[0] in "aeiou" else "a ")
        return f" {match.group('prep').lower()} {article}{place}"

    def _detail(self, sentence: str, start: int) -> str:
        """Position if stated, else the short phrase that follows the noun ("with a tense face")."""
        where = self._position(sentence, start)
        if where:
            return where
        match = self.detail_re.match(sentence, start)
        if not match or any(w in self.narration for w in re.findall(r"[\w']+", match.group(0).lower())):
            return ""
        return f" {match.group(0).strip().lower()}"

    # --- people ------------------------------------------------------------------------------------------

    def _people(self, sentences: list[str]) -> list[_Person]:
        people: list[_Person] = []

        def add(noun: str, gender: str, order: int) -> _Person:
            person = _Person(noun, gender, order)
            people.append(person)
            return person

        for s_index, sentence in enumerate(sentences):
            for m in self.group_re.finditer(sentence):  # "two women", "both men"
                noun = m.group("noun").lower()
                gender, singular = self.plural[noun]
                have = sum(1 for p in people if p.gender == gender)
                for _ in range(self.cfg.numbers[m.group("count").lower()] - have):
                    add(singular, gender, s_index * 1000 + m.start())
            for m in self.person_re.finditer(sentence):
                if self._spoken_of(sentence, m):
                    continue
                noun = m.group("noun").lower()
                gender = self.gender.get(noun, "person")
                another = bool(m.group("other") or m.group("across")) or \
                    m.group("det").lower() in ("another", "other", "second")
                same = [p for p in people if p.gender == gender or gender == "person" or p.gender == "person"]
                # "the other woman" after "two women": the one of the pair not named yet, else someone new
                unnamed = [p for p in same if not p.mentioned_at and p.gender == gender] if another else []
                if unnamed:
                    person = unnamed[0]
                elif another or not same:
                    person = add(noun, gender, s_index * 1000 + m.start())
                else:
                    person = same[0]
                    if person.noun == "person" and noun != "person":  # "a person" turns out to be "the doctor"
                        person.noun = noun
                        person.gender = gender if gender != "person" else person.gender
                if m.group("age") and not person.age:
                    person.age = f"{m.group('age').lower()} "
                if m.group("garment") and not person.clothing:
                    colour = (m.group("colour") or "").lower()
                    person.clothing = f" in a {colour + ' ' if colour else ''}{(m.group('modifier') or '').lower()}" \
                                      f"{m.group('garment').lower()}"
                person.mentioned_at.append(s_index * 1000 + m.start())
                person.where = person.where or self._detail(sentence, m.end()) or self._setting(sentence, m.end())
                if not person.pose and (pose := self.pose_re.search(sentence)):
                    person.pose = pose.group(0).lower()
        people = people[: self.cfg.max_people]
        self._clothing_by_pronoun(sentences, people)
        return people

    def _owner(self, people: list[_Person], pronoun: str, at: int) -> _Person | None:
        """The person a pronoun at position `at` points at: of the pronoun's gender, the one mentioned last before
        it ("The other woman leans forward; her eyebrows..."), else the first person."""
        pronoun = pronoun.lower()
        gender = next((g for g, words in _PRONOUNS.items() if pronoun in words), None)
        candidates = [p for p in people if gender is None or p.gender == gender] or people
        before = [(max(t for t in p.mentioned_at if t <= at), i, p) for i, p in enumerate(candidates)
                  if any(t <= at for t in p.mentioned_at)]
        return max(before, key=lambda b: b[:2])[2] if before else (candidates[0] if candidates else None)

    def _clothing_by_pronoun(self, sentences: list[str], people: list[_Person]) -> None:
        """Clothing given anywhere in the chain ("judging by his uniform") joins its wearer's description."""
        for s_index, sentence in enumerate(sentences):
            for m in self.worn_re.finditer(sentence):
                owner = self._owner(people, m.group("owner"), s_index * 1000 + m.start())
                if owner is None or owner.clothing:
                    continue
                colour = (m.group("colour") or "").lower()
                modifier = (m.group("modifier") or "").lower()
                owner.clothing = f" in a {colour + ' ' if colour else ''}{modifier}{m.group('garment').lower()}"

    # --- objects -----------------------------------------------------------------------------------------

    def _things(self, sentences: list[str]) -> list[_Found]:
        things: dict[str, _Found] = {}
        for s_index, sentence in enumerate(sentences):
            for m in self.thing_re.finditer(sentence):
                noun = m.group("noun").lower()
                # "on screen", "the video": the narration of watching, unless the chain describes the thing itself
                if noun in self.narration and not (m.group("colour") or m.group("material")):
                    continue
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

    def _said(self, phrase: str) -> str:
        """The first clause of what follows a region's linking verb, at most a few words."""
        clause = re.split(r"\s+(?:and|but|while|as|which|because|so|when|like)\s+", phrase.strip().lower())[0]
        words = [w for w in clause.split() if w not in self.cfg.filler_words][: self.cfg.region_detail_words]
        return "" if not words or words[0] in self.cfg.not_details else " ".join(words)

    def _regions(self, sentences: list[str], people: list[_Person]) -> list[_Found]:
        """Face regions the chain observes ("his brow is a bit furrowed"), each described as the chain says."""
        subject = people[0] if people else None
        if subject is None:
            return []
        found: dict[str, _Found] = {}
        text = " ".join(sentences)
        if self.face_re.search(text):
            found["face"] = _Found("face", "face", f"the face of {subject.name}", f"{subject.noun}'s face",
                                   "primary", "face", 0)
        for s_index, sentence in enumerate(sentences):
            for m in self.region_re.finditer(sentence):
                region = self.region_of[m.group("part").lower()]
                owner = self._owner(people, m.group("owner"), s_index * 1000 + m.start()) or subject
                said = self._said(m.group("after") or m.group("before") or "")
                known = found.get(region)
                if known and (known.said or not said):
                    continue
                part = m.group("part").lower()
                description = f"the {part} of {owner.name}" + (f", {said}" if said else "")
                priority = "primary" if region == "face" else "secondary"
                found[region] = _Found(region, part, description, f"{owner.noun}'s {part}", priority, region,
                                       1 + s_index * 1000 + m.start(), said)
        if self.hand_re.search(text) and "hand" not in found:
            found["hand"] = _Found("hand", "hand", f"the hands of {subject.name}", f"{subject.noun}'s hand",
                                   "secondary", "hand", 10**6)
        face = [found.pop("face")] if "face" in found else []
        rest = sorted(found.values(), key=lambda f: (not f.said, f.order))
        return face + rest

    # --- text --------------------------------------------------------------------------------------------

    def _clip(self, sentence: str) -> str:
        """A sentence within `key_point_chars`, cut only between clauses: its leading clauses, or, when the
        emotion it concludes lies past them, the clauses that end with it. A first clause over the limit is kept
        whole: never a cut mid-clause ("... she is feeling.")."""
        limit = self.cfg.key_point_chars
        if len(sentence) <= limit:
            return sentence
        clauses = re.split(r"(?<=[,;:])\s+", sentence.rstrip(".!? "))

        def fits(parts: list[str]) -> str:
            text = " ".join(parts).rstrip(",;: ")
            return text[:1].upper() + text[1:] + "."

        lead = [clauses[0]]
        for clause in clauses[1:]:
            if len(fits(lead + [clause])) > limit:
                break
            lead.append(clause)
        last_emotion = max((i for i, c in enumerate(clauses) if self.emotion_re.search(c)), default=-1)
        if last_emotion < len(lead):
            return fits(lead)
        tail = [clauses[last_emotion]]
        for clause in reversed(clauses[:last_emotion]):
            if len(fits([clause] + tail)) > limit:
                break
            tail.insert(0, clause)
        return fits(tail)

    def _key_points(self, sentences: list[str], kept: list[str], subject: _Person | None) -> list[str]:
        """The opening (about the subject), the sentence richest in cues, the conclusion (with its emotion):
        three different sentences, none of them the narration of watching."""
        usable = [s for s in kept if not any(p.search(s) for p in self.watching)] or kept
        markers = self.cfg.conclusion_markers
        concluding = [s for s in reversed(sentences) if any(m in s.lower() for m in markers)
                      and not any(p.search(s) for p in self.watching)]
        chosen: dict[str, str] = {}
        # a chain of fewer than three sentences gives its clauses as key points rather than one sentence twice
        clauses = [c.rstrip(",;: ") for s in usable for c in re.split(r"(?<=[,;:])\s+", s.rstrip(".!? "))]
        clauses = [c[:1].upper() + c[1:] + "." for c in clauses if len(c.split()) >= 3]

        def take(role: str, candidates: list[str]) -> None:
            taken = {p.lower() for p in chosen.values()}
            chosen[role] = next((c for c in map(self._clip, candidates + clauses) if c.lower() not in taken), "")

        take("opening", [s for s in usable if subject and subject.noun in s.lower()] + usable)
        # the conclusion: one that names an emotion first, else any, else the last sentences
        take("ending", sorted(concluding, key=lambda s: not self.emotion_re.search(s)) + list(reversed(usable)))
        take("cues", sorted(usable, key=lambda s: len(self.cue_re.findall(s)), reverse=True))
        return [p for p in (chosen["opening"], chosen["cues"], chosen["ending"]) if p]

    def _affirmed(self, sentence: str, match: re.Match[str]) -> bool:
        """False for a cue the chain denies or only imagines (`text.negation`)."""
        return not self.negations.denied(sentence, match.start(), match.end())

    def _emotion_indicators(self, kept: list[str], regions: list[_Found]) -> list[str]:
        """The emotions the chain concludes first, then what it observed: regions seen doing something, cue
        phrases it affirms."""
        observed = [f"{r.noun} {r.said}" for r in regions if r.said]
        cues = [m.group(0).lower() for s in kept for m in self.cue_re.finditer(s) if self._affirmed(s, m)]
        markers = self.cfg.conclusion_markers
        concluding = [s for s in kept if any(k in s.lower() for k in markers)] or kept[-2:]
        noun_uses = {(s, n.start(), n.end()) for s in concluding for n in self.noun_sense_re.finditer(s)}
        emotions = [m.group(0).lower() for s in concluding for m in self.emotion_re.finditer(s)
                    if self._affirmed(s, m) and not any(s == t and a <= m.start() < b for t, a, b in noun_uses)]
        return list(dict.fromkeys(emotions + observed + cues))[: self.cfg.max_emotion_indicators]

    def summarize(self, thinking: str) -> Row:
        """A summary as a plain dict (the QC step validates and normalises it)."""
        sentences = _sentences(thinking)
        kept = [s for s in sentences if self._kept(s)]
        people = self._people(kept)
        regions = self._regions(kept, people)
        face = [r for r in regions if r.category == "face"]
        persons = [_Found("person", p.noun, p.described(), f"{p.noun}{p.clothing.replace(' in a ', ' in ')}",
                          "primary", f"person/{i}", p.order) for i, p in enumerate(people)]
        observed = [r for r in regions if r.category != "face" and r.said]
        unsaid = [r for r in regions if r.category != "face" and not r.said]
        candidates = persons + face + observed + self._things(kept) + unsaid
        # a bare mention of a thing ("a bed") says nothing SAM3 can use about appearance or position: leave it out;
        # a person on screen is an object however briefly described ("a man")
        candidates = [o for o in candidates if o.category == "person"
                      or len(content_words(o.description, self.qc.empty_description_words)) > 1]
        objects = candidates[: self.cfg.max_objects]
        return {
            "key_points": self._key_points(sentences, kept, people[0] if people else None),
            "objects": [{"category": o.category, "description": o.description, "priority": o.priority} for o in objects],
            "emotion_indicators": self._emotion_indicators(kept, regions),
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
