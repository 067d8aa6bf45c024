import sqlite3

import numpy as np
import pytest

from thinking_summarizer.io.media import VideoWriter
from thinking_summarizer.io.model_datasets import StudentsDataset, TeacherDataset, ThinkerDataset
from thinking_summarizer.io.result_cache import ResponseCache
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration
from thinking_summarizer.pipelines.thinking_generation.nodes import (
    answer_correct, gate_thinking, merge_thinking_shards, shard_of,
)

from .conftest import REPO, kill_after_calls, model, think, typed
from .openai_stub import StubOpenAI

PARAMS, CLIENT = typed("thinking_generation"), typed("openai_client")
STUDENTS = model(StudentsDataset, inference=typed("student_inference"), client=CLIENT)  # loads nothing unless asked


def samples(tmp_path, n: int) -> list[dict]:
    video = tmp_path / "clip.mp4"
    if not video.exists():
        with VideoWriter(video, fps=4, width=32, height=24) as writer:
            for t in range(4):
                writer.write(np.full((24, 32, 3), 40 * t, np.uint8))
    return [{"sample_id": f"s{i:03d}", "source": "bench", "video_id": f"v{i}", "video_path": str(video),
             "question": f"MARK-{i} What does she feel?", "options": ["A. Happy", "B. Sad"],
             "problem_type": "multiple choice", "answer": "A", "reference_context": "A room.",
             "reference_thinking": f"She smiles warmly at the camera, sample {i}. " * 8} for i in range(n)]


def cfg(openai: dict | None = None, **changes) -> ThinkingGeneration:
    """conf/base's thinking_generation with `changes`, and `openai` laid over its openai section."""
    return PARAMS.model_copy(update=changes | ({"openai": PARAMS.openai.model_copy(update=openai)} if openai else {}))


def lazy(partitions: dict) -> dict:
    return {name: (lambda rows=rows: rows) for name, rows in partitions.items()}


def test_three_shards_merged_equal_one_unsharded_run(tmp_path):
    work = samples(tmp_path, 30)
    whole = merge_thinking_shards(lazy(think(work, cfg(), CLIENT, tmp_path / "a")), work, cfg())
    parts = {}
    for shard in range(3):
        parts |= think(work, cfg(shard_id=shard, num_shards=3), CLIENT, tmp_path / "b")
    assert sorted(parts) == ["shard-000-of-003", "shard-001-of-003", "shard-002-of-003"]
    assert all(parts.values()), "every shard gets work"
    merged = merge_thinking_shards(lazy(parts | {"shard-000-of-001": whole}), work, cfg(num_shards=3))
    key = lambda r: r["sample_id"]  # noqa: E731
    assert sorted(merged, key=key) == sorted(whole, key=key)
    assert {shard_of(f"s{i:03d}", 3) for i in range(30)} == {0, 1, 2}


def test_merge_refuses_incomplete_or_overlapping_shards(tmp_path):
    work = samples(tmp_path, 10)
    parts = {}
    for shard in range(2):
        parts |= think(work, cfg(shard_id=shard, num_shards=2), CLIENT, tmp_path)
    with pytest.raises(ValueError, match=r"not generated yet: \['shard-001-of-002'\]"):
        merge_thinking_shards(lazy({"shard-000-of-002": parts["shard-000-of-002"]}), work, cfg(num_shards=2))
    doubled = {"shard-000-of-002": parts["shard-000-of-002"] * 2, "shard-001-of-002": parts["shard-001-of-002"]}
    with pytest.raises(ValueError, match="duplicated"):
        merge_thinking_shards(lazy(doubled), work, cfg(num_shards=2))
    with pytest.raises(ValueError, match="shard_id=2 must be in"):
        think(work, cfg(shard_id=2, num_shards=2), CLIENT, tmp_path)


def test_gates_reject_with_reasons_and_report_accuracy():
    long_text = "x" * (PARAMS.gates.max_chars + 1)
    chain = lambda think, answer="A": f"<context>c</context><think>{think}</think><answer>{answer}</answer>"  # noqa: E731
    good = "She smiles and laughs with a bright cheerful voice throughout the clip. " * 4
    raw = [
        {"sample_id": "ok", "raw_text": chain(good), "error": ""},
        {"sample_id": "wrong", "raw_text": chain(good + " Different.", "B"), "error": ""},
        {"sample_id": "dup", "raw_text": chain(good), "error": ""},
        {"sample_id": "short", "raw_text": chain("too short"), "error": ""},
        {"sample_id": "long", "raw_text": chain(long_text), "error": ""},
        {"sample_id": "notags", "raw_text": "I think the answer is A.", "error": ""},
        {"sample_id": "video", "raw_text": "", "error": "unreadable_video: cannot open clip.mp4"},
        {"sample_id": "failed", "raw_text": "", "error": "generation_error: HTTP 500"},
    ]
    raw = [r | {"generator_id": "g", "tokens": 1} for r in raw]
    work = [{"sample_id": r["sample_id"], "problem_type": "multiple choice", "answer": "A"} for r in raw]
    kept, rejects, report = gate_thinking(raw, work, PARAMS)
    assert [k["sample_id"] for k in kept] == ["ok", "wrong"]
    assert {r["sample_id"]: r["reason"] for r in rejects} == {
        "dup": "duplicate_thinking", "short": "too_short", "long": "too_long", "notags": "no_tags",
        "video": "unreadable_video", "failed": "generation_error"}
    assert report["accuracy_by_problem_type"] == {"multiple choice": 0.5}


@pytest.mark.parametrize(("pred", "gold", "ptype", "expected"), [
    ("A", "A", "multiple choice", True), ("B", "A", "multiple choice", False), ("A. Happy", "A", "multiple choice", True),
    ("B,C", "C, B", "emer_ov_mc", True), ("B", "B,C", "emer_ov_mc", False), ("3.0", "3", "numerical", True),
    ("three", "3", "numerical", False), ("Hello  World", "hello world", "OCR", True), ("x", None, "OCR", None),
])
def test_answer_correct(pred, gold, ptype, expected):
    assert answer_correct(pred, gold, ptype) == expected


def test_openai_backend_sends_video_and_resumes_after_a_kill(tmp_path):
    server = StubOpenAI(latency=0.1, reply="thinking", script={"MARK-3": ["500"] * 10})
    url = server.start()
    try:
        config = cfg(backend="openai", checkpoint_every=4, openai={"base_urls": [url, url], "concurrency": 2,
                                                                    "timeout_s": 5})
        client, cache = CLIENT.model_copy(update={"max_attempts": 1}), str(tmp_path / "cache.sqlite")
        work = samples(tmp_path, 40)
        before = kill_after_calls("tests.conftest:think", [work, config, client, str(tmp_path)], server, 16, tmp_path)
        assert 16 <= sum(before.values()) < 40
        assert server.media_types["video_url"] == sum(before.values())
        finished = sqlite3.connect(cache).execute("SELECT count(*) FROM outcomes").fetchone()[0]
        assert finished >= sum(before.values()) - 4 - 1  # at most the in-flight ones and the failing one are lost
        records = think(work, config, client, tmp_path)["shard-000-of-001"]
        # exactly the samples not finished before the kill are asked (once); finished ones never again
        assert sum(server.calls.values()) - sum(before.values()) == 40 - finished
        by_id = {r["sample_id"]: r for r in records}
        assert by_id["s003"]["error"] == "generation_error: server_error: HTTP 500: server trouble; gave up after 1 attempts"
        kept, rejects, report = gate_thinking(records, work, PARAMS)
        assert len(kept) == 39 and report["accuracy_by_problem_type"] == {"multiple choice": 1.0}
    finally:
        server.stop()


def test_segmentation_reads_thinking_through_the_same_cache(tmp_path):
    """A video and question thought about by thinking_generation are not thought about again for segmentation."""
    from thinking_summarizer.pipelines.video_segmentation.nodes import think_and_summarize

    server = StubOpenAI(reply="thinking")
    url = server.start()
    try:
        config = cfg(backend="openai", openai={"base_urls": [url], "concurrency": 2, "timeout_s": 5})
        work = samples(tmp_path, 3)
        think(work, config, CLIENT, tmp_path)
        asked = sum(server.calls.values())
        plan = [{k: s[k] for k in ("sample_id", "video_id", "video_path", "question", "options", "problem_type",
                                   "reference_thinking")} for s in work]
        segmentation = typed("video_segmentation").model_copy(update={"summarizer": "teacher", "max_prompts": 4,
                                                                       "ungrounded_prompts": None})
        teacher = model(TeacherDataset, cfg=typed("teacher_labeling"), vocabulary=typed("vocabulary"),
                        qc=typed("summary_qc"), client=CLIENT)
        rows = think_and_summarize(plan, ResponseCache(tmp_path / "cache.sqlite"),
                                   model(ThinkerDataset, cfg=config, client=CLIENT), {}, teacher, STUDENTS, {},
                                   segmentation, typed("vocabulary"))
        assert (asked, sum(server.calls.values())) == (3, 3)  # nothing generated twice
        assert all(r.get("thinking") for r in rows)
    finally:
        server.stop()


@pytest.mark.parametrize(("override", "sends_vllm_fields"), [("null", False), ("{}", True)])
def test_documented_audio_fields_line_as_kedros_config_loader_merges_it(tmp_path, override, sends_vllm_fields):
    """docs/scaling.md: `audio_fields: null` removes vLLM's fields; `{}` is merged into the base value and changes
    nothing (so the docs do not offer it). A transformers serve gets none of them, its video by path and the frame
    count the way it reads it, capped by the video's own."""
    import shutil

    from kedro.config import OmegaConfigLoader

    from thinking_summarizer.generators.openai_server import OpenAIServerGenerator
    from thinking_summarizer.settings import CONFIG_LOADER_ARGS

    assert "`audio_fields: null`" in (REPO / "docs/scaling.md").read_text()
    shutil.copytree(REPO / "conf/base", tmp_path / "conf/base")
    (tmp_path / "conf/served").mkdir()
    (tmp_path / "conf/served/parameters_thinking_generation.yml").write_text(
        f"thinking_generation:\n  openai:\n    audio_fields: {override}\n    num_frames: 8\n")
    params = OmegaConfigLoader(str(tmp_path / "conf"), env="served", **CONFIG_LOADER_ARGS)["parameters"]
    thinking = ThinkingGeneration.model_validate(params["thinking_generation"])
    sample = samples(tmp_path, 1)[0] | {"video_info": {"has_audio": True, "num_frames": 4}}
    generator = OpenAIServerGenerator.from_config(thinking, CLIENT)
    url = "http://127.0.0.1:8000/v1"
    body = generator.request(sample, generator.plan(url, "vllm"))
    assert ("mm_processor_kwargs" in body) is sends_vllm_fields and "chat_template_kwargs" not in body
    assert body["messages"][1]["content"][0]["video_url"]["url"].startswith("data:video/mp4;base64,")
    body = generator.request(sample, generator.plan(url, "transformers"))
    assert "mm_processor_kwargs" not in body
    assert body["chat_template_kwargs"] == {"num_frames": 4}  # never more frames than the video has
    assert body["messages"][1]["content"][0]["video_url"]["url"] == str((tmp_path / "clip.mp4").resolve())


def test_a_transport_the_server_cannot_take_is_refused_before_any_request():
    """data_url to a transformers serve (it loads videos only from a URL or its own disk), a path to another
    machine, a transformers serve elsewhere without a file server: each a ServerConfigError naming the key."""
    from thinking_summarizer.generators.openai_server import OpenAIServerGenerator, identify
    from thinking_summarizer.io.openai_client import ServerConfigError

    assert identify({"/v1/chat/completions", "/load_model"}) == "transformers"
    assert identify({"/v1/chat/completions", "/version"}) == "vllm"
    assert identify(set()) == "other"

    def generator(**openai):
        return OpenAIServerGenerator.from_config(cfg(openai=openai), CLIENT)

    with pytest.raises(ServerConfigError, match=r"video_transport: data_url cannot reach .*transformers serve"):
        generator(video_transport="data_url").plan("http://127.0.0.1:8000/v1", "transformers")
    with pytest.raises(ServerConfigError, match=r"video_transport: path .* is another machine"):
        generator(video_transport="path").plan("http://gpu1:8000/v1", "vllm")
    with pytest.raises(ServerConfigError, match=r"video_base_url is required .*transformers serve on another"):
        generator().plan("http://gpu1:8000/v1", "transformers")
    plan = generator(video_base_url="http://files:9000/videos").plan("http://gpu1:8000/v1", "transformers")
    assert (plan.transport, plan.audio, plan.frames) == ("http", False, True)
    assert generator().plan("http://gpu1:8000/v1", "other").transport == "data_url"
