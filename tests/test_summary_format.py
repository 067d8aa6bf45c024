import pytest
from pydantic import ValidationError

from thinking_summarizer.schemas import Summary, VisualObject
from thinking_summarizer.text.summary_format import SummaryParseError, parse, render


def make_summary(**changes) -> Summary:
    fields = dict(
        key_points=["The woman smiles at the start.", "Her voice is cheerful.", "She is happy."],
        objects=[
            VisualObject(category="table", description="a brown wooden table in the middle", priority="secondary"),
            VisualObject(category="person", description="a woman in a red coat on the left", priority="primary"),
            VisualObject(category="cup", description="a white mug on the table", priority="secondary"),
        ],
        emotion_indicators=["raised mouth corners", "cheerful voice"],
        sam3_prompts=["brown table", "woman in red coat", "white mug"],
    )
    return Summary(**{**fields, **changes})


def test_render_puts_primary_first_and_keeps_prompts_aligned():
    text = render(make_summary())
    assert text.splitlines()[:9] == [
        "## Key points", "1. The woman smiles at the start.", "2. Her voice is cheerful.", "3. She is happy.", "",
        "## Visual objects", "Primary Objects:", "- person: a woman in a red coat on the left", "Secondary Objects:",
    ]
    prompts = text.split("## SAM3 prompts\n")[1].splitlines()
    assert prompts == ["- woman in red coat", "- brown table", "- white mug"]


def test_round_trip_is_exact():
    text = render(make_summary())
    assert render(parse(text)) == text
    empty = render(make_summary(emotion_indicators=[]))
    assert "## Emotion indicators\n- none\n" in empty
    assert render(parse(empty)) == empty
    assert parse(empty).emotion_indicators == []


@pytest.mark.parametrize(
    ("mutate", "line_no", "reason"),
    [
        (lambda t: t.replace("2. Her voice", "3. Her voice"), 3, "expected key point '2. ...'"),
        (lambda t: t.replace("- person: a woman", "- person a woman"), 8, "expected '- category: description'"),
        (lambda t: t.replace("## SAM3 prompts", "## Prompts"), 17, "unknown section"),
        (lambda t: "Summary:\n" + t, 1, "text before the first section"),
        (lambda t: t.replace("- cheerful voice", "cheerful voice"), 15, "expected a '- ' bullet"),
    ],
)
def test_parse_names_the_broken_line(mutate, line_no, reason):
    with pytest.raises(SummaryParseError) as err:
        parse(mutate(render(make_summary())))
    assert err.value.line_no == line_no
    assert reason in str(err.value)


def test_parse_reports_structural_errors():
    text = render(make_summary())
    with pytest.raises(SummaryParseError, match="missing section '## SAM3 prompts'"):
        parse(text.split("## SAM3 prompts")[0])
    with pytest.raises(SummaryParseError, match="one per object"):
        parse(text + "\n- extra prompt")
    no_primary = text.replace("Primary Objects:\n- person: a woman in a red coat on the left\n", "Primary Objects:\n- none\n")
    with pytest.raises(SummaryParseError, match="objects"):
        parse(no_primary)


def test_schema_rejects_wrong_counts():
    with pytest.raises(ValidationError, match="key_points"):
        make_summary(key_points=["only one"])
    with pytest.raises(ValidationError, match="primary"):
        make_summary(objects=[o.model_copy(update={"priority": "secondary"}) for o in make_summary().objects])
    with pytest.raises(ValidationError, match="one per object"):
        make_summary(sam3_prompts=["a", "b"])
