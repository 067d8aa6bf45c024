import re
import json
from collections import Counter
from pathlib import Path

import pytest

from thinking_summarizer.pipelines.data_sampling.nodes import (
    SourceDataError, allocate, dedupe_by_video, load_sources, sample_by_ratio,
)

from .conftest import kedro_cli, load_latest, run_session

GOOD = {"problem": "What is she feeling?", "problem_type": "multiple choice", "options": ["A. Happy", "B. Sad"],
        "solution": "<context>c</context><think>she smiles</think><answer>A</answer>", "answer": "A",
        "data_type": "video"}
REJECT = {"on_invalid": "reject", "on_missing_video": "reject"}


def write_source(tmp_path: Path, name: str, records: list, jsonl: bool = False, videos=()) -> dict:
    root = tmp_path / f"{name}_videos"
    root.mkdir(exist_ok=True)
    for video in videos:
        (root / video).write_bytes(b"\x00")
    path = tmp_path / (f"{name}.jsonl" if jsonl else f"{name}.json")
    path.write_text("".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records))
    return {"path": str(path), "video_root": str(root), "ratio": 1.0}


def test_json_list_and_jsonl_with_video_or_path(tmp_path):
    sources = {
        "bench": write_source(tmp_path, "bench", [GOOD | {"video": "a.mp4"}], videos=["a.mp4"]),
        "daily": write_source(tmp_path, "daily", [GOOD | {"path": "b.mp4"}], jsonl=True, videos=["b.mp4"]),
    }
    samples, rejects = load_sources(sources, REJECT, {})
    assert rejects == []
    assert [(s["source"], s["video_id"], s["reference_thinking"]) for s in samples] == [
        ("bench", "a", "she smiles"), ("daily", "b", "she smiles")]
    assert samples[0]["video_path"].endswith("bench_videos/a.mp4")


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({k: v for k, v in GOOD.items() if k != "problem"} | {"video": "a.mp4"}, "problem", "invalid_field"),
        (GOOD | {"video": "a.mp4", "options": "A. Happy"}, "options", "invalid_field"),
        (GOOD | {"video": "a.mp4", "problem_type": "essay"}, "problem_type", "invalid_field"),
        (GOOD, "(record)", "invalid_field"),
        (GOOD | {"video": "missing.mp4"}, "video", "missing_video"),
    ],
)
def test_broken_record_is_rejected_with_file_index_and_field(tmp_path, record, field, reason):
    sources = {"bench": write_source(tmp_path, "bench", [GOOD | {"video": "a.mp4"}, record], videos=["a.mp4"])}
    samples, rejects = load_sources(sources, REJECT, {})
    assert len(samples) == 1
    assert [(r["file"], r["index"], r["field"], r["reason"]) for r in rejects] == [
        (sources["bench"]["path"], 1, field, reason)]
    with pytest.raises(SourceDataError, match=rf"bench.json record 1 field '{re.escape(field)}'.*{reason}"):
        load_sources(sources, {**REJECT, "on_invalid": "fail"}, {})


def test_missing_video_can_be_kept(tmp_path):
    sources = {"bench": write_source(tmp_path, "bench", [GOOD | {"video": "missing.mp4"}])}
    samples, rejects = load_sources(sources, {**REJECT, "on_missing_video": "keep"}, {})
    assert (len(samples), rejects) == (1, [])


def test_bad_json(tmp_path):
    broken_list = tmp_path / "broken.json"
    broken_list.write_text('[{"problem": "x",')
    with pytest.raises(SourceDataError, match=r"broken.json: invalid JSON at line 1"):
        load_sources({"s": {"path": str(broken_list), "ratio": 1}}, REJECT, {})
    sources = {"d": write_source(tmp_path, "d", [GOOD | {"path": "a.mp4"}], jsonl=True, videos=["a.mp4"])}
    Path(sources["d"]["path"]).write_text(Path(sources["d"]["path"]).read_text() + "{not json\n")
    samples, rejects = load_sources(sources, REJECT, {})
    assert len(samples) == 1
    assert [(r["index"], r["reason"]) for r in rejects] == [(1, "invalid_json")]
    with pytest.raises(SourceDataError, match="source file not found"):
        load_sources({"s": {"path": str(tmp_path / "nope.json"), "ratio": 1}}, REJECT, {})


def test_duplicate_video_keeps_earlier_source(tmp_path):
    sources = {
        "bench": write_source(tmp_path, "bench", [GOOD | {"video": "clips/A.mp4"}], videos=[]),
        "train": write_source(tmp_path, "train", [GOOD | {"video": "clips/a.mp4", "problem": "Other?"}]),
    }
    samples, _ = load_sources(sources, {**REJECT, "on_missing_video": "keep"}, {})
    kept, dropped = dedupe_by_video(list(reversed(samples)), sources)
    assert [s["source"] for s in kept] == ["bench"]
    assert [(d["source"], d["reason"]) for d in dropped] == [("train", "duplicate_video")]


def test_allocate_is_proportional_and_redistributes_shortfall():
    assert allocate({"a": 100, "b": 100, "c": 100}, {"a": 0.5, "b": 0.3, "c": 0.2}, 10) == {"a": 5, "b": 3, "c": 2}
    assert allocate({"a": 2, "b": 100}, {"a": 0.5, "b": 0.5}, 10) == {"a": 2, "b": 8}
    assert allocate({"a": 3, "b": 4}, {"a": 1, "b": 1}, 100) == {"a": 3, "b": 4}
    assert sum(allocate({"a": 50, "b": 50, "c": 50}, {"a": 1, "b": 1, "c": 1}, 10).values()) == 10


def _pool():
    samples = []
    for source, n in (("a", 60), ("b", 60), ("c", 60)):
        for i in range(n):
            samples.append({"sample_id": f"{source}-{i:03d}", "source": source,
                            "problem_type": "judge" if i % 3 == 0 else "multiple choice"})
    return samples


def test_sampling_follows_ratios_stratifies_and_is_reproducible():
    sources = {"a": {"ratio": 0.5}, "b": {"ratio": 0.3}, "c": {"ratio": 0.2}}
    first = sample_by_ratio(_pool(), sources, 50, seed=1)
    assert Counter(s["source"] for s in first) == {"a": 25, "b": 15, "c": 10}
    assert Counter(s["problem_type"] for s in first if s["source"] == "b") == {"multiple choice": 10, "judge": 5}
    assert first == sample_by_ratio(list(reversed(_pool())), sources, 50, seed=1)
    assert first != sample_by_ratio(_pool(), sources, 50, seed=2)


SMALLER = {"demo_data": {"n_scenes": 240}, "data_sampling": {"n_samples": 160}}


def test_pipeline_on_demo_corpus(project):
    run_session(project, ["data_sampling"], SMALLER)
    sampled = load_latest(project, "sampled_samples", SMALLER)
    report = load_latest(project, "sampling_report", SMALLER)
    assert len(sampled) == 160 == report["sampled"]
    assert report["sampled_by_source"] == {"intentbench": 64, "daily_omni": 48, "intenttrain": 48}
    assert report["rejected"] == {"intenttrain/duplicate_video": 12}
    assert len({s["video_id"] for s in sampled}) == 160
    assert all(Path(s["video_path"]).is_file() and s["reference_thinking"] for s in sampled)


def test_cli_with_real_intenttrain_sample(project, shared_sample):
    result = kedro_cli(project, "run", "--pipelines", "data_sampling", "--params",
                       f"data_sampling.sources.intenttrain.path={shared_sample}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rejects = load_latest(project, "invalid_records")
    real = [r for r in rejects if r["source"] == "intenttrain"]
    assert len(real) == 20  # the sample ships no videos, so every record is named as missing one
    assert {(r["field"], r["reason"]) for r in real} == {("video", "missing_video")}
    assert sorted(r["index"] for r in real) == list(range(20))

    result = kedro_cli(project, "run", "--pipelines", "data_sampling", "--params",
                       f"data_sampling.sources.intenttrain.path={shared_sample},"
                       "data_sampling.policy.on_missing_video=keep")
    assert result.returncode == 0, result.stderr[-3000:]
    sampled = load_latest(project, "sampled_samples")
    real = [s for s in sampled if s["source"] == "intenttrain"]
    assert len(real) == 20  # 30% of 320 is 96, so all 20 real records are drawn
    assert all(s["problem_type"] == "emer_ov_mc" and len(s["reference_thinking"]) > 500 for s in real)
