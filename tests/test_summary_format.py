import pytest
from pydantic import ValidationError

from thinking_summarizer.schemas import Summary, VisualObject
from thinking_summarizer.schemas.params.shared import Vocabulary
from thinking_summarizer.text.summary_format import (
    SummaryParseError,
    category_lookup,
    implied_category,
    parse,
    parse_lenient,
    render,
)

LOOKUP = category_lookup(Vocabulary(**{"categories": ["person", "table", "cup", "hand", "face"],
                          "synonyms": {"person": ["woman", "old man"], "cup": ["mug"], "table": ["desk"]}}))


def make_summary(**changes) -> Summary:
    fields = dict(
        key_points=["The woman smiles at the start.", "Her voice is cheerful.", "She is happy."],
        objects=[
            VisualObject(category="table", description="a brown wooden table in the middle", priority="secondary"),
            VisualObject(category="person", description="a woman in a red coat on the left", priority="primary"),
            VisualObject(category="cup", description="a white mug on the table", priority="secondary"),
            VisualObject(category="hand", description="a woman's fingers on the mug", priority="secondary"),
        ],
        emotion_indicators=["raised mouth corners", "cheerful voice"],
        sam3_prompts=["brown table", "woman in red coat", "white mug", "woman's hand"],
    )
    return Summary(**{**fields, **changes})


def test_each_object_line_carries_its_prompt_and_a_category_only_where_the_description_does_not_imply_it():
    text = render(make_summary(), LOOKUP)
    assert text.splitlines() == [
        "## Key points", "1. The woman smiles at the start.", "2. Her voice is cheerful.", "3. She is happy.", "",
        "## Visual objects", "Primary Objects:", "- a woman in a red coat on the left | woman in red coat",
        "Secondary Objects:", "- a brown wooden table in the middle | brown table",
        "- a white mug on the table | white mug",  # mug before table: the first vocabulary noun names it
        "- hand: a woman's fingers on the mug | woman's hand", "",  # "woman's" would say person
        "## Emotion indicators", "- raised mouth corners", "- cheerful voice",
    ]


@pytest.mark.parametrize(("description", "category"), [
    ("the hands of the old man", "hand"), ("an old man in a grey coat", "person"), ("a woman's face", "person"),
    ("the face of the woman", "face"), ("a brown desk", "table"), ("a blurry shape", None)])
def test_the_implied_category_is_the_first_vocabulary_noun(description, category):
    assert implied_category(description, LOOKUP) == category


def test_round_trip_is_exact():
    text = render(make_summary(), LOOKUP)
    assert render(parse(text, LOOKUP), LOOKUP) == text
    assert parse(text, LOOKUP) == make_summary().model_copy(update={
        "objects": [make_summary().objects[i] for i in (1, 0, 2, 3)],
        "sam3_prompts": [make_summary().sam3_prompts[i] for i in (1, 0, 2, 3)]})
    empty = render(make_summary(emotion_indicators=[]), LOOKUP)
    assert empty.endswith("## Emotion indicators\n- none")
    assert render(parse(empty, LOOKUP), LOOKUP) == empty
    assert parse(empty, LOOKUP).emotion_indicators == []


def test_an_explicit_category_wins_over_the_description():
    text = render(make_summary(), LOOKUP).replace("- a white mug", "- table: a white mug")
    assert [o.category for o in parse(text, LOOKUP).objects] == ["person", "table", "table", "hand"]


@pytest.mark.parametrize(
    ("mutate", "line_no", "reason"),
    [
        (lambda t: t.replace("2. Her voice", "3. Her voice"), 3, "expected key point '2. ...'"),
        (lambda t: t.replace("- a woman in a red coat on the left | ", "- a woman in a red coat on the left "), 8,
         "no SAM3 prompt"),
        (lambda t: t.replace("- a brown wooden table", "- a brown wooden thing"), 10, "no category"),
        (lambda t: t.replace("## Emotion indicators", "## Prompts"), 14, "unknown section"),
        (lambda t: "Summary:\n" + t, 1, "text before the first section"),
        (lambda t: t.replace("- cheerful voice", "cheerful voice"), 16, "expected a '- ' bullet"),
    ],
)
def test_parse_names_the_broken_line(mutate, line_no, reason):
    with pytest.raises(SummaryParseError) as err:
        parse(mutate(render(make_summary(), LOOKUP)), LOOKUP)
    assert err.value.line_no == line_no
    assert reason in str(err.value)


def test_parse_reports_structural_errors():
    text = render(make_summary(), LOOKUP)
    with pytest.raises(SummaryParseError, match="missing section '## Emotion indicators'"):
        parse(text.split("## Emotion indicators")[0], LOOKUP)
    with pytest.raises(SummaryParseError, match="section appears twice"):
        parse(text + "\n\n## Visual objects\nPrimary Objects:\n- a woman | woman", LOOKUP)
    no_primary = text.replace("Primary Objects:\n- a woman in a red coat on the left | woman in red coat\n",
                              "Primary Objects:\n- none\n")
    with pytest.raises(SummaryParseError, match="at least one object must be primary"):
        parse(no_primary, LOOKUP)


def test_the_lenient_parse_keeps_what_it_can_read():
    text = render(make_summary(), LOOKUP).replace("- a white mug on the table | white mug", "- a blurry shape")
    parsed = parse_lenient(text + "\n## SAM3 prompts\n- stray", LOOKUP)
    assert [(o["category"], o["prompt"]) for o in parsed["objects"]] == [
        ("person", "woman in red coat"), ("table", "brown table"), ("", ""), ("hand", "woman's hand")]
    assert parsed["sam3_prompts"] == ["woman in red coat", "brown table", "woman's hand"]


def test_schema_rejects_wrong_counts():
    with pytest.raises(ValidationError, match="key_points"):
        make_summary(key_points=["only one"])
    with pytest.raises(ValidationError, match="primary"):
        make_summary(objects=[o.model_copy(update={"priority": "secondary"}) for o in make_summary().objects])
    with pytest.raises(ValidationError, match="one per object"):
        make_summary(sam3_prompts=["a", "b"])
