"""Summary quality metrics: format, placeholders, categories, objects against a reference, key points,
emotion indicators, prompt coverage. Pure functions over plain data."""

from __future__ import annotations

import re
from typing import Any

from rouge_score import rouge_scorer

from thinking_summarizer.text.summary_format import SummaryParseError, parse
from thinking_summarizer.text.summary_qc import find_placeholders

_WORD = re.compile(r"[a-z][a-z'-]*")
_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def format_valid(text: str, lookup: dict[str, str]) -> bool:
    """Whether the text parses into the summary schema."""
    try:
        parse(text, lookup)
        return True
    except SummaryParseError:
        return False


def has_placeholder(text: str, patterns: list[str]) -> bool:
    return bool(find_placeholders(text, patterns))


def category_validity(objects: list[dict[str, Any]], lookup: dict[str, str]) -> float | None:
    """Share of objects whose category (or a synonym of one) is in the vocabulary; None without objects."""
    if not objects:
        return None
    return sum(o["category"].lower() in lookup for o in objects) / len(objects)


def attributes(description: str, attribute_words: set[str]) -> set[str]:
    """The appearance and position words of a description (colours, clothing, materials, sides)."""
    return {w for w in _WORD.findall(description.lower()) if w in attribute_words}


def match_objects(predicted: list[dict[str, Any]], reference: list[dict[str, Any]], lookup: dict[str, str],
                  attribute_words: set[str], min_overlap: float, identity_words: set[str] = frozenset(),
                  exclusive: list[set[str]] = ()) -> int:
    """How many predicted objects pair one-to-one with a reference object that they describe: the same category,
    at least `min_overlap` of the reference's attribute words covered *and* at least `min_overlap` of the
    prediction's own attribute words right (a red dog is not the brown dog on the same side), and the same
    person noun where both name one (`identity_words`: a man is not the woman in the same coat), and no
    contradiction within a group of `exclusive` words (a red table is not the brown table in the middle). Best
    pairs first."""
    def category(obj: dict[str, Any]) -> str:
        word = obj["category"].strip().lower()
        return lookup.get(word, word)

    def identity(obj: dict[str, Any]) -> set[str]:
        return {w for w in _WORD.findall(obj["description"].lower()) if w in identity_words}

    pairs = []
    for i, pred in enumerate(predicted):
        said = attributes(pred["description"], attribute_words)
        for j, ref in enumerate(reference):
            if category(pred) != category(ref):
                continue
            if identity(pred) and identity(ref) and not identity(pred) & identity(ref):
                continue
            wanted = attributes(ref["description"], attribute_words)
            if any(said & group and wanted & group and not said & wanted & group for group in exclusive):
                continue
            covered = len(said & wanted) / len(wanted) if wanted else 1.0
            right = len(said & wanted) / len(said) if said and wanted else 1.0
            if covered >= min_overlap and right >= min_overlap:
                pairs.append((covered + right, i, j))
    used_pred, used_ref = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_pred and j not in used_ref:
            used_pred.add(i)
            used_ref.add(j)
    return len(used_pred)


def precision_recall_f1(matched: int, n_predicted: int, n_reference: int) -> tuple[float, float, float]:
    precision = matched / n_predicted if n_predicted else 0.0
    recall = matched / n_reference if n_reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def rouge_l(predicted: list[str], reference: list[str]) -> float:
    """ROUGE-L F-measure of the joined key points."""
    if not predicted or not reference:
        return 0.0
    return _ROUGE.score(" ".join(reference), " ".join(predicted))["rougeL"].fmeasure


def bag_f1(predicted: list[str], reference: list[str]) -> float:
    """Word-level F1 between two lists of short phrases (emotion indicators)."""
    pred = {w for p in predicted for w in _WORD.findall(p.lower())}
    ref = {w for r in reference for w in _WORD.findall(r.lower())}
    return precision_recall_f1(len(pred & ref), len(pred), len(ref))[2]


def prompt_grounding(objects: list[dict[str, Any]]) -> float | None:
    """Share of objects whose SAM3 prompt says only what their own description says: every word of the prompt
    ("'s" aside) is a word of the description, or its singular ("man's hand" for "the hands of the man"); what
    SAM3 is asked for is then what the summary describes. None without objects."""
    if not objects:
        return None

    def grounded(obj: dict[str, Any]) -> bool:
        said = set(_WORD.findall(obj["description"].lower()))
        words = [w.removesuffix("'s") for w in _WORD.findall(obj.get("prompt", "").lower())]
        return bool(words) and all(w in said or f"{w}s" in said or f"{w}es" in said for w in words)

    return sum(map(grounded, objects)) / len(objects)


def prompt_coverage(objects: list[dict[str, Any]], prompts: list[str]) -> float | None:
    """Share of objects that have their own non-empty SAM3 prompt; None without objects."""
    if not objects:
        return None
    return min(len([p for p in prompts if p.strip()]), len(objects)) / len(objects)
