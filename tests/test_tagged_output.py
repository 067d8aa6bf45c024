import json

import pytest

from thinking_summarizer.text.tagged_output import extract


def test_real_intenttrain_chains(shared_sample):
    for record in json.loads(shared_sample.read_text()):
        parts = extract(record["solution"])
        assert parts.problems == []
        assert 800 <= len(parts.thinking) <= 3700
        assert parts.context and parts.answer


@pytest.mark.parametrize(
    ("text", "context", "thinking", "answer", "problems"),
    [
        ("<context>c</context><think>t</think><answer>B</answer>", "c", "t", "B", []),
        ("<CONTEXT> c </CONTEXT>< think >t  two</ think><answer>B</answer>", "c", "t two", "B", []),
        ("<think>unclosed thought <answer>A</answer>", None, "unclosed thought", "A",
         ["no <context> tag", "unclosed <think>"]),
        ("<think>outer <think>inner</think> tail</think><answer>C</answer>", None, "outer inner tail", "C",
         ["no <context> tag", "nested <think>"]),
        ("Sure! <think>t</think><answer>D</answer> Hope this helps.", None, "t", "D",
         ["no <context> tag", "text outside the tags"]),
        ("no tags at all", None, None, None,
         ["no <context> tag", "no <think> tag", "no <answer> tag", "text outside the tags"]),
        ("</think><answer>A</answer>", None, None, "A", ["no <context> tag", "</think> without <think>"]),
        ("<think>a</think><answer>A", None, "a", "A", ["no <context> tag", "unclosed <answer>"]),
        ("", None, None, None, ["no <context> tag", "no <think> tag", "no <answer> tag"]),
    ],
)
def test_adversarial_strings(text, context, thinking, answer, problems):
    parts = extract(text)
    assert (parts.context, parts.thinking, parts.answer, parts.problems) == (context, thinking, answer, problems)
