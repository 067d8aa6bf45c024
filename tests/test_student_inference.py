"""The student's fast paths compute what the plain path computes (tiny model, CPU); backends that cannot run say
why."""

import pytest

from thinking_summarizer.io.openai_client import ServerConfigError, client_settings
from thinking_summarizer.schemas.params.shared import ClientSettings, MaxChars
from thinking_summarizer.student import Inference, untrained
from thinking_summarizer.student.backends import ServedStudent, VLLMStudent, build_summarizer
from thinking_summarizer.tiny_models.student import build_tiny_student

from .conftest import small_student, tiny_model_dir, typed

INFERENCE, CLIENT = typed("student_inference"), typed("openai_client")
THINKINGS = ["The man in a grey coat frowns.",
             "A woman in a red dress on the left smiles while the man opposite her looks away and sighs deeply.",
             "Two children laugh.", "The old man sits on a brown sofa in the middle; his voice trembles as he speaks."]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    recipe = small_student()
    path = tiny_model_dir(tmp_path_factory, "student")
    path.mkdir(parents=True)
    build_tiny_student(path, recipe, THINKINGS * 10, THINKINGS * 10)
    return str(path)


def test_static_cache_length_sorted_batches_write_what_one_at_a_time_writes(base):
    student = untrained(base, "Summarise.", device="cpu")
    student.inference = Inference(sort_by_length=False, cache_implementation="dynamic")
    plain = student.summarize(THINKINGS, 1, 20)
    for inference in (Inference(sort_by_length=True), Inference(sort_by_length=True, cache_implementation="static")):
        student.inference = inference
        fast = student.summarize(THINKINGS, 3, 20)
        assert fast.texts == plain.texts, inference
        assert fast.new_tokens == plain.new_tokens
        assert len(fast.seconds) == len(THINKINGS)


def test_backends_that_cannot_run_say_why(tmp_path):
    card = {"instruction": "Summarise.", "base_model": "x"}
    with pytest.raises(RuntimeError, match="needs the vllm package"):
        VLLMStudent(str(tmp_path), card, INFERENCE.vllm)
    served = client_settings(CLIENT, INFERENCE.openai, ClientSettings)
    with pytest.raises(ServerConfigError, match="student_inference.openai.base_url is required"):
        ServedStudent(card, served.model_copy(update={"base_url": None})).summarize(["a"], 1, 8)
    with pytest.raises(RuntimeError, match=r"student server at http://127.0.0.1:9/v1 answered no request"):
        unreachable = served.model_copy(update={"base_url": "http://127.0.0.1:9/v1", "max_attempts": 1})
        ServedStudent(card, unreachable).summarize(["a"], 1, 8)
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        build_summarizer(str(tmp_path), INFERENCE.model_copy(update={"backend": "tgi"}), CLIENT)


def test_decoding_held_to_the_grammar_writes_only_summaries_that_parse(base):
    """Even an untrained model, held to the card's grammar, writes summaries `parse` accepts (vocabulary nouns,
    counts, one prompt per object); the same model unconstrained writes none."""
    from thinking_summarizer.pipelines.dataset_build.nodes import summary_grammar
    from thinking_summarizer.text.summary_format import category_lookup, parse
    from thinking_summarizer.text.summary_qc import check_summary

    vocabulary, qc = typed("vocabulary"), typed("summary_qc")
    student = untrained(base, "Summarise.", device="cpu")
    free = student.summarize(THINKINGS[:2], 2, 400).texts
    short = MaxChars(key_point=40, description=40, emotion_indicator=20, sam3_prompt=20)
    student.card["grammar"] = summary_grammar(vocabulary, qc.model_copy(update={"max_chars": short}))
    held = student.summarize(THINKINGS[:2], 2, 2000)
    assert all(n < 2000 for n in held.new_tokens), "it must finish within the grammar's bounds"
    for text in held.texts:
        summary = parse(text, category_lookup(vocabulary))
        assert 3 <= len(summary.objects) == len(summary.sam3_prompts) <= 4
        check_summary(text, vocabulary, qc)  # QC accepts its form too
    assert not any(text.startswith("## Key points") for text in free)
    student.inference = Inference(constrained=False)
    assert student.summarize(THINKINGS[:2], 2, 400).texts == free
