"""Metric functions on hand-made cases with known answers."""

import pytest

from thinking_summarizer.pipelines.evaluation.nodes import ScoringRules, score_sample
from thinking_summarizer.schemas import Summary
from thinking_summarizer.text import metrics as m
from thinking_summarizer.text.summary_format import parse_lenient, render

from .conftest import typed

RULES = ScoringRules.from_params(typed("evaluation"), typed("vocabulary"), typed("summary_qc"))

REFERENCE = {
    "key_points": ["The woman in the red coat smiles.", "Her voice is cheerful.", "So she is happy."],
    "objects": [
        {"category": "person", "description": "a woman in a red coat on the left", "priority": "primary"},
        {"category": "table", "description": "a brown table in the middle", "priority": "secondary"},
        {"category": "cup", "description": "a white cup on the right", "priority": "secondary"},
    ],
    "emotion_indicators": ["smiling", "cheerful voice"],
    "sam3_prompts": ["woman in red coat", "brown table", "white cup"],
}


def text_of(summary: dict) -> str:
    return render(Summary(**summary), RULES.lookup)


def with_objects(objects: list[dict], prompts: list[str] | None = None) -> dict:
    return REFERENCE | {"objects": objects, "sam3_prompts": prompts or [f"p{i}" for i in range(len(objects))]}


def test_perfect_summary_scores_one_everywhere():
    row = score_sample(text_of(REFERENCE), REFERENCE, REFERENCE["objects"], RULES)
    for key in ("format_valid", "category_validity", "prompt_coverage", "object_f1/teacher", "primary_f1/teacher",
                "key_point_rouge_l/teacher", "emotion_f1/teacher", "object_f1/truth"):
        assert row[key] == pytest.approx(1.0), key
    assert row["placeholder"] == 0.0


def test_empty_output_scores_zero():
    row = score_sample("", REFERENCE, REFERENCE["objects"], RULES)
    assert row["format_valid"] == 0.0 and row["objects"] == 0.0
    assert row["category_validity"] is None and row["prompt_coverage"] is None
    assert row["object_recall/teacher"] == row["object_precision/teacher"] == row["object_f1/teacher"] == 0.0
    assert row["key_point_rouge_l/teacher"] == 0.0 and row["emotion_f1/teacher"] == 0.0


def test_placeholder_only_output():
    text = text_of(REFERENCE).replace("red coat on the left", "[color] [clothing]")
    row = score_sample(text, REFERENCE, REFERENCE["objects"], RULES)
    assert row["placeholder"] == 1.0
    # the person is still a person, but none of its colour, clothing or position words are there
    assert row["object_recall/teacher"] == pytest.approx(2 / 3)
    assert row["primary_recall/teacher"] == 0.0


def test_wrong_categories_match_nothing_and_lower_category_validity():
    wrong = with_objects([
        {"category": "dog", "description": "a woman in a red coat on the left", "priority": "primary"},
        {"category": "spaceship", "description": "a brown table in the middle", "priority": "secondary"},
        {"category": "cup", "description": "a white cup on the right", "priority": "secondary"},
    ])
    text = text_of(REFERENCE).replace("- a woman", "- dog: a woman").replace("- a brown table", "- spaceship: a brown table")
    parsed = parse_lenient(text, RULES.lookup)
    assert m.category_validity(parsed["objects"], RULES.lookup) == pytest.approx(2 / 3)
    hits = m.match_objects(wrong["objects"], REFERENCE["objects"], RULES.lookup, RULES.attribute_words, 0.5)
    assert hits == 1  # only the cup
    assert m.precision_recall_f1(hits, 3, 3) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_synonyms_count_as_their_category():
    synonyms = [
        {"category": "woman", "description": "a woman wearing a red coat, on the left", "priority": "primary"},
        {"category": "desk", "description": "a brown desk in the middle", "priority": "secondary"},
        {"category": "mug", "description": "a white mug on the right", "priority": "secondary"},
    ]
    assert m.match_objects(synonyms, REFERENCE["objects"], RULES.lookup, RULES.attribute_words, 0.5) == 3


def test_attribute_overlap_threshold_decides_a_match():
    blue = [{"category": "person", "description": "a woman in a blue dress on the right", "priority": "primary"}]
    half = [{"category": "person", "description": "a woman in a red jacket", "priority": "primary"}]
    assert m.match_objects(blue, REFERENCE["objects"][:1], RULES.lookup, RULES.attribute_words, 0.5) == 0
    # red (1 of red, coat, left) is a third of the reference's attributes
    assert m.match_objects(half, REFERENCE["objects"][:1], RULES.lookup, RULES.attribute_words, 0.3) == 1
    assert m.match_objects(half, REFERENCE["objects"][:1], RULES.lookup, RULES.attribute_words, 0.5) == 0


def test_each_reference_object_is_matched_once():
    twice = [REFERENCE["objects"][1], REFERENCE["objects"][1]]
    assert m.match_objects(twice, REFERENCE["objects"], RULES.lookup, RULES.attribute_words, 0.5) == 1


def test_truth_ignores_face_and_hand_regions():
    summary = with_objects(REFERENCE["objects"] + [{"category": "face", "description": "the face of the woman",
                                                   "priority": "primary"}])
    row = score_sample(text_of(summary), REFERENCE, REFERENCE["objects"], RULES)
    assert row["object_precision/truth"] == 1.0 and row["object_precision/teacher"] == pytest.approx(3 / 4)


def test_malformed_text_is_invalid_but_still_scored_for_content():
    text = text_of(REFERENCE).replace("## Emotion indicators", "## Feelings")
    row = score_sample(text, REFERENCE, None, RULES)
    assert row["format_valid"] == 0.0 and row["object_f1/teacher"] == 1.0
    assert "object_f1/truth" not in row


def test_prompt_coverage_and_rouge():
    assert m.prompt_coverage(REFERENCE["objects"], ["one", ""]) == pytest.approx(1 / 3)
    assert m.prompt_coverage(REFERENCE["objects"], ["a", "b", "c", "d"]) == 1.0
    assert m.rouge_l(["the cat sat"], ["the cat sat"]) == 1.0
    assert 0 < m.rouge_l(["the cat sat on the mat"], ["a cat sat"]) < 1
    assert m.bag_f1(["smiling face"], ["smiling"]) == pytest.approx(2 / 3)


def test_a_summary_of_another_scene_scores_zero_on_objects():
    """Right categories, wrong objects: a student object counts only when the reference has that object."""
    invented = with_objects([
        {"category": "person", "description": "a man in a red coat on the left", "priority": "primary"},
        {"category": "table", "description": "a red table in the middle", "priority": "secondary"},
        {"category": "cup", "description": "a black cup on the left", "priority": "secondary"},
        {"category": "dog", "description": "a red dog on the right", "priority": "secondary"},
    ])
    row = score_sample(text_of(invented), REFERENCE, REFERENCE["objects"], RULES)
    assert row["format_valid"] == 1.0
    assert row["object_f1/teacher"] == row["object_f1/truth"] == row["primary_f1/truth"] == 0.0


def test_a_wrong_colour_on_the_right_side_is_not_the_object():
    # the red table shares 'middle' with the brown table: half of the reference's words, but half of its own wrong
    red = [{"category": "table", "description": "a red table in the middle", "priority": "secondary"}]
    args = RULES.lookup, RULES.attribute_words, 0.5, RULES.identity_words, RULES.exclusive
    assert m.match_objects(red, REFERENCE["objects"], *args) == 0
    brown = [{"category": "table", "description": "the brown table", "priority": "secondary"}]
    assert m.match_objects(brown, REFERENCE["objects"], *args) == 1


def test_prompt_grounding_counts_prompts_that_say_only_what_their_description_says():
    objects = [{"description": "a girl in a red sweater on the right", "prompt": "girl in red sweater"},
               {"description": "the hands of the old man", "prompt": "man's hand"},
               {"description": "a girl in a red sweater on the right", "prompt": "man man"},  # seen in a default run
               {"description": "a white cup", "prompt": ""}]
    assert m.prompt_grounding(objects) == pytest.approx(2 / 4)
    assert m.prompt_grounding([]) is None
