import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from thinking_summarizer.io.media import VideoWriter
from thinking_summarizer.schemas.params.data import DataSampling, SamplingPolicy, Split
from thinking_summarizer.pipelines.data_sampling.nodes import (
    SourceDataError, allocate, dedupe_samples, load_sources, sample_by_ratio,
)

from .conftest import documented_kedro_command, kedro_cli, load_latest, run_session, typed

GOOD = {"problem": "What is she feeling?", "problem_type": "multiple choice", "options": ["A. Happy", "B. Sad"],
        "solution": "<context>c</context><think>she smiles</think><answer>A</answer>", "answer": "A",
        "data_type": "video"}


def sampling(**policy) -> DataSampling:
    """conf/base's data_sampling section with the given policy."""
    return typed("data_sampling").model_copy(update={"policy": SamplingPolicy(**policy)})


REJECT = sampling(on_invalid="reject", on_missing_video="reject")


def write_video(path: Path, frames: int = 4) -> None:
    """A real (tiny) H.264 file, as a source's video would be."""
    with VideoWriter(path, fps=4, width=32, height=24) as writer:
        for i in range(frames):
            writer.write(np.full((24, 32, 3), 40 * i, dtype=np.uint8))


def write_source(tmp_path: Path, name: str, records: list, jsonl: bool = False, videos=()) -> dict:
    root = tmp_path / f"{name}_videos"
    root.mkdir(exist_ok=True)
    for video in videos:
        write_video(root / video)
    path = tmp_path / (f"{name}.jsonl" if jsonl else f"{name}.json")
    path.write_text("".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records))
    return {"path": str(path), "video_root": str(root), "ratio": 1.0}


def test_json_list_and_jsonl_with_video_or_path(tmp_path):
    sources = {
        "bench": write_source(tmp_path, "bench", [GOOD | {"video": "a.mp4"}], videos=["a.mp4"]),
        "daily": write_source(tmp_path, "daily", [GOOD | {"path": "b.mp4"}], jsonl=True, videos=["b.mp4"]),
    }
    samples, rejects = load_sources(sources, REJECT)
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
    samples, rejects = load_sources(sources, REJECT)
    assert len(samples) == 1
    assert [(r["file"], r["index"], r["field"], r["reason"]) for r in rejects] == [
        (sources["bench"]["path"], 1, field, reason)]
    with pytest.raises(SourceDataError, match=rf"bench.json record 1 field '{re.escape(field)}'.*{reason}"):
        load_sources(sources, sampling(on_invalid="fail"))


def test_missing_video_can_be_kept(tmp_path):
    sources = {"bench": write_source(tmp_path, "bench", [GOOD | {"video": "missing.mp4"}])}
    samples, rejects = load_sources(sources, sampling(on_missing_video="keep"))
    assert (len(samples), rejects) == (1, [])


def test_bad_json(tmp_path):
    broken_list = tmp_path / "broken.json"
    broken_list.write_text('[{"problem": "x",')
    with pytest.raises(SourceDataError, match=r"broken.json: invalid JSON at line 1"):
        load_sources({"s": {"path": str(broken_list), "ratio": 1}}, REJECT)
    sources = {"d": write_source(tmp_path, "d", [GOOD | {"path": "a.mp4"}], jsonl=True, videos=["a.mp4"])}
    Path(sources["d"]["path"]).write_text(Path(sources["d"]["path"]).read_text() + "{not json\n")
    samples, rejects = load_sources(sources, REJECT)
    assert len(samples) == 1
    assert [(r["index"], r["reason"]) for r in rejects] == [(1, "invalid_json")]
    with pytest.raises(SourceDataError, match="source file not found"):
        load_sources({"s": {"path": str(tmp_path / "nope.json"), "ratio": 1}}, REJECT)


def test_identical_sample_keeps_earlier_source_other_questions_stay(tmp_path):
    sources = {
        "bench": write_source(tmp_path, "bench", [GOOD | {"video": "clips/A.mp4"}], videos=[]),
        "train": write_source(tmp_path, "train", [GOOD | {"video": "clips/A.mp4", "problem": " what is she  FEELING?"},
                                                  GOOD | {"video": "clips/A.mp4", "problem": "Other?"},
                                                  GOOD | {"video": "clips/a.mp4"}]),
    }
    samples, _ = load_sources(sources, sampling(on_missing_video="keep"))
    kept, dropped = dedupe_samples(list(reversed(samples)), sources)
    # the same question (case and spacing aside) on the same video is one sample; another question is its own;
    # clips/a.mp4 is another video than clips/A.mp4
    assert sorted((s["source"], s["video_id"], s["question"]) for s in kept) == [
        ("bench", "clips/A", "What is she feeling?"), ("train", "clips/A", "Other?"),
        ("train", "clips/a", "What is she feeling?")]
    assert [(d["source"], d["reason"]) for d in dropped] == [("train", "duplicate_sample")]


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
    assert report["rejected"] == {"intenttrain/duplicate_sample": 12}
    assert len({s["video_id"] for s in sampled}) == 160
    assert all(Path(s["video_path"]).is_file() and s["reference_thinking"] for s in sampled)
    # the demo's ground truth for the sampled videos, keyed by the video_id the samples carry
    truth = load_latest(project, "ground_truth", SMALLER)
    assert truth.keys() == {s["video_id"] for s in sampled}
    assert all(Path(t["masks"]).is_file() and t["objects"] for t in truth.values())


def test_user_source_that_loads_nothing_fails_the_run_naming_it(project, shared_sample):
    # what an earlier demo run left: a failed run on a user's source must not rewrite it
    earlier_truth = project / "data/02_intermediate/ground_truth.json"
    earlier_truth.write_text(json.dumps({"scene_0001": {"scene_id": "scene_0001", "objects": [], "masks": "m.npz"}}))
    before = earlier_truth.read_bytes()
    result = kedro_cli(project, "run", "--pipelines", "data_sampling", "--params",
                       f"data_sampling.sources.intenttrain.path={shared_sample}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    # the sample ships no videos: the source, its path and the top reason are named; no demo run happens instead
    assert re.search(r"source 'intenttrain' \(.*intenttrain_emer_sample.json.*yielded no usable record of 20: "
                     r"missing_video x20", output), output[-3000:]
    assert not (project / "data/01_raw/demo").exists()
    assert earlier_truth.read_bytes() == before
    # what the user must fix, as the command's last words, without a traceback
    assert "Traceback" not in output
    assert re.search(r"Error: data_sampling source 'intenttrain' .* yielded no usable record", result.stderr), result.stderr[-2000:]


def test_the_readme_line_for_daily_omni_without_its_files_names_the_key_in_one_message(project):
    result = kedro_cli(project, *documented_kedro_command("sources.daily_omni.path="))
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert ("Error: /data/Daily-Omni/qa.json: source file not found (data_sampling.sources.daily_omni.path)"
            in result.stderr), result.stderr[-2000:]


def test_configured_user_source_excludes_the_demo(project, shared_sample):
    result = kedro_cli(project, "run", "--pipelines", "data_sampling", "--params",
                       f"data_sampling.sources.intenttrain.path={shared_sample},"
                       "data_sampling.policy.on_missing_video=keep")
    assert result.returncode == 0, result.stderr[-3000:]
    sampled = load_latest(project, "sampled_samples")
    report = load_latest(project, "sampling_report")
    assert {s["source"] for s in sampled} == {"intenttrain"} and len(sampled) == 20
    assert report["demo"] is False and report["sources"] == {"intenttrain": str(shared_sample)}
    assert all(s["problem_type"] == "emer_ov_mc" and len(s["reference_thinking"]) > 500 for s in sampled)
    assert not (project / "data/01_raw/demo").exists()


def test_daily_omni_qa_json_in_its_own_layout(tmp_path):
    """Daily-Omni's published qa.json: several questions per video, videos at <id>/<id>_video.mp4."""
    root = tmp_path / "Videos"
    for video_id in ("G_VTkkb34gw", "x9QmL2"):
        (root / video_id).mkdir(parents=True)
        write_video(root / video_id / f"{video_id}_video.mp4")
    record = {"Question": "What sound follows the door closing?", "Choice": ["A. A bell", "B. A dog", "C. Rain"],
              "Answer": "A", "video_id": "G_VTkkb34gw", "Type": "AV Event Alignment", "video_category": "vlog",
              "video_duration": "30s", "content_parent_category": "Life", "content_fine_category": "Home"}
    records = [record, record | {"Question": "Who speaks first?", "Type": "Reasoning"},
               record | {"video_id": "x9QmL2", "Choice": "['A. One', 'B. Two']", "Answer": "B"},
               record | {"video_id": "missing_id"}, {k: v for k, v in record.items() if k != "Question"}]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(records))
    sources = {"daily_omni": {"path": str(path), "video_root": str(root)}}
    samples, rejects = load_sources(sources, REJECT)
    assert [(s["video_id"], s["problem_type"], s["options"], s["answer"]) for s in samples] == [
        ("G_VTkkb34gw/G_VTkkb34gw_video", "multiple choice", ["A. A bell", "B. A dog", "C. Rain"], "A"),
        ("G_VTkkb34gw/G_VTkkb34gw_video", "multiple choice", ["A. A bell", "B. A dog", "C. Rain"], "A"),
        ("x9QmL2/x9QmL2_video", "multiple choice", ["A. One", "B. Two"], "B")]
    assert samples[0]["metadata"]["Type"] == "AV Event Alignment"
    assert samples[0]["metadata"]["content_fine_category"] == "Home"
    assert samples[0]["video_info"]["num_frames"] == 4 and samples[0]["video_info"]["width"] == 32
    # rejects name the native field
    assert [(r["index"], r["field"], r["reason"]) for r in rejects] == [
        (3, "video_id", "missing_video"), (4, "Question", "invalid_field")]
    kept, dropped = dedupe_samples(samples, sources)
    assert len(kept) == 3 and not dropped  # two questions on one video are two samples
    # the format can be named instead of recognised
    assert len(load_sources({"d": sources["daily_omni"] | {"format": "daily_omni"}}, REJECT)[0]) == 3


def test_third_party_copies_string_options_list_answers_and_jsonl(tmp_path):
    records = [GOOD | {"video": "a.mp4", "options": "['A. Happy', 'B. Sad', 'C. Calm']", "answer": ["A", "C"],
                       "problem_type": "emer_ov_mc"},
               GOOD | {"path": "b.mp4", "options": '["A. Happy", "B. Sad"]'}]
    sources = {"t": write_source(tmp_path, "t", records, jsonl=True, videos=["a.mp4", "b.mp4"]) | {"format": "humanomni"}}
    samples, rejects = load_sources(sources, REJECT)
    assert rejects == []
    assert [(s["options"], s["answer"]) for s in samples] == [
        (["A. Happy", "B. Sad", "C. Calm"], "A,C"), (["A. Happy", "B. Sad"], "A")]


def test_media_paths_are_confined_to_the_video_root(tmp_path):
    outside = tmp_path / "secret.mp4"
    write_video(outside)
    fifo = tmp_path / "trap.mp4"
    os.mkfifo(fifo)  # opening it would block the test: proof that a rejected path is never read
    records = [GOOD | {"video": "a.mp4"}, GOOD | {"video": "../secret.mp4"}, GOOD | {"video": str(outside)},
               GOOD | {"video": "../trap.mp4"}, GOOD | {"video": "../../../proc/self/environ"},
               GOOD | {"video": "sub/../a.mp4", "problem": "Same video, other path"}]
    sources = {"s": write_source(tmp_path, "s", records, videos=["a.mp4"])}
    samples, rejects = load_sources(sources, REJECT)
    assert [Path(s["video_path"]).name for s in samples] == ["a.mp4", "a.mp4"]
    assert [(r["index"], r["reason"]) for r in rejects] == [(i, "outside_video_root") for i in (1, 2, 3, 4)]


def test_unreadable_videos_are_rejected_at_sampling(tmp_path):
    sources = {"s": write_source(tmp_path, "s", [GOOD | {"video": v} for v in
                                                 ("ok.mp4", "empty.mp4", "text.mp4", "x" * 5000 + ".mp4")],
                                 videos=["ok.mp4"])}
    root = Path(sources["s"]["video_root"])
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n" * 20)
    samples, rejects = load_sources(sources, REJECT)
    assert len(samples) == 1
    assert [(r["index"], r["reason"]) for r in rejects] == [
        (1, "unreadable_video"), (2, "unreadable_video"), (3, "bad_video_path")]
    assert "0 bytes" in rejects[0]["detail"] and "text.mp4" in rejects[1]["detail"]


def test_source_files_with_bom_other_encoding_or_an_object(tmp_path):
    sources = {"s": write_source(tmp_path, "s", [GOOD | {"video": "a.mp4"}], videos=["a.mp4"])}
    path = Path(sources["s"]["path"])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_sources(sources, REJECT)[0]) == 1  # a BOM is read past
    path.write_bytes(json.dumps([GOOD | {"video": "a.mp4", "problem": "Qu'est-ce qu'elle ressent à l'écran ?"}],
                                ensure_ascii=False).encode("latin-1"))
    with pytest.raises(SourceDataError, match=r"s.json: not UTF-8 text"):
        load_sources(sources, REJECT)
    path.write_text(json.dumps({"data": [GOOD | {"video": "a.mp4"}]}))
    with pytest.raises(SourceDataError, match=r"s.json: expected a JSON list of records .* found a JSON object"):
        load_sources(sources, REJECT)


@pytest.mark.parametrize(("params", "message"), [
    ({"data_sampling": {"demo_sources": {k: {"ratio": 0} for k in ("intentbench", "daily_omni", "intenttrain")}}},
     "data_sampling.demo_sources: the ratios must have a positive sum"),
    ({"data_sampling": {"demo_sources": {"intentbench": {"ratio": -0.4}}}},
     "data_sampling.demo_sources.intentbench.ratio: Input should be greater than or equal to 0"),
    ({"data_sampling": {"n_samples": -5}}, "data_sampling.n_samples: Input should be greater than 0"),
    ({"data_sampling": {"policy": {"on_invalid": "ignore"}}}, "data_sampling.policy.on_invalid: Input should be"),
    ({"teacher_labeling": {"backend": "gpt"}}, "teacher_labeling.backend: unknown backend 'gpt'"),
])
def test_bad_parameters_stop_the_run_before_any_node(project, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_session(project, ["data_sampling"], params)
    assert not (project / "data/01_raw/demo").exists()


def test_daily_omni_every_question_a_sample_and_each_video_on_one_side(tmp_path):
    from thinking_summarizer.pipelines.dataset_build.nodes import split_examples

    root = tmp_path / "Videos"
    records = []
    for video_id in ("AbC123xYz_0", "abc123xyz_0"):  # differ only in case: two YouTube videos
        (root / video_id).mkdir(parents=True)
        write_video(root / video_id / f"{video_id}_video.mp4")
        records += [{"Question": f"Question {q} about the clip?", "Choice": ["A. Yes", "B. No"], "Answer": "A",
                     "video_id": video_id, "Type": "Reasoning"} for q in range(3)]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(records + records[:1]))  # and one record twice
    sources = {"daily_omni": {"path": str(path), "video_root": str(root)}}
    samples, _ = dedupe_samples(load_sources(sources, REJECT)[0], sources)
    assert Counter(s["video_id"] for s in samples) == {"AbC123xYz_0/AbC123xYz_0_video": 3,
                                                        "abc123xyz_0/abc123xyz_0_video": 3}
    examples = [{"sample_id": s["sample_id"], "video_id": s["video_id"], "source": "daily_omni",
                 "problem_type": "multiple choice"} for s in samples]
    train, val, _ = split_examples(examples, Split(seed=0, val_fraction=0.5, stratify_by=["source"]))
    assert len(train) == len(val) == 3
    assert not {e["video_id"] for e in train} & {e["video_id"] for e in val}
