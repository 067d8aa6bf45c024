"""Pipelines run as Kedro's starters test them: an in-memory catalog and Kedro's SequentialRunner, no project."""

import json

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from thinking_summarizer.io.media import VideoWriter
from thinking_summarizer.pipelines.data_sampling.pipeline import create_pipeline as data_sampling
from thinking_summarizer.pipelines.teacher_labeling.pipeline import create_pipeline as teacher_labeling

from .conftest import at, run_params, typed

DEMO = typed("demo_data")


class Kept(MemoryDataset):
    """An intermediate result the runner would release after its last reader; kept for the test to read."""

    def _release(self) -> None:
        pass


def catalog(pipeline: Pipeline, changes: dict | None = None, **data) -> DataCatalog:
    """An in-memory catalog for `pipeline`: every `params:` input it reads as Kedro hands it (the typed section of
    conf/base's parameters with `changes` merged in), and `data`."""
    params = run_params(changes)
    reads = {name for node in pipeline.nodes for name in node.inputs if name.startswith("params:")}
    return DataCatalog({name: MemoryDataset(at(params, name.removeprefix("params:"))) for name in reads}
                       | {name: MemoryDataset(value) for name, value in data.items()})


def test_data_sampling_then_teacher_labeling_on_a_users_daily_omni_file(tmp_path):
    root = tmp_path / "Videos"
    records = []
    for i in range(6):
        video_id = f"vid{i}"
        (root / video_id).mkdir(parents=True)
        with VideoWriter(root / video_id / f"{video_id}_video.mp4", fps=4, width=32, height=24) as writer:
            for t in range(4):
                writer.write(np.full((24, 32, 3), 30 * t, np.uint8))
        records.append({"Question": f"What happens in clip {i}?", "Choice": ["A. x", "B. y"], "Answer": "A",
                        "video_id": video_id, "Type": "Event Sequence"})
    (tmp_path / "qa.json").write_text(json.dumps(records))
    run = catalog(data_sampling(), {
        "demo_data": {"root": str(tmp_path / "demo")},
        "data_sampling": {"n_samples": 4, "sources": {"daily": {"path": str(tmp_path / "qa.json"),
                                                                "video_root": str(root)}}}})
    run["sampled_samples"] = Kept()
    SequentialRunner().run(data_sampling(), run)
    sampled = run.load("sampled_samples")
    assert len(sampled) == 4 and {s["source"] for s in sampled} == {"daily"}
    assert run.load("sampling_report")["demo"] is False and not (tmp_path / "demo").exists()
    assert run.load("ground_truth") == {}  # a user's videos have none: evaluation scores against the teacher
    # the sampled questions carry no chain: the extractive teacher is handed made-up thinking to label
    thinking = [{"sample_id": s["sample_id"], "thinking": "The woman in a red coat on the left smiles; her eyes "
                 "are bright and her mouth is upturned. So the answer is happy."} for s in sampled]
    labels = catalog(teacher_labeling(), thinking_records=thinking)
    SequentialRunner().run(teacher_labeling(), labels)
    assert len(labels.load("teacher_labels")) == 4 and labels.load("teacher_usage")["api_calls"] == 0


def test_teacher_labeling_then_dataset_build_writes_training_data_its_grammar_accepts():
    """Demo chains (two questions per video) through the extractive teacher and dataset_build: no video on both
    sides of the split, and every assistant turn matches `summary_grammar`, the regex the student is decoded with."""
    import re

    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.pipelines.dataset_build.pipeline import create_pipeline as dataset_build

    scenes = [make_scene(i, DEMO) for i in range(20)]
    samples = [{"sample_id": f"{s.scene_id}-q{q}", "video_id": s.scene_id, "source": "demo",
                "problem_type": "multiple choice"} for s in scenes for q in (1, 2)]
    thinking = [{"sample_id": f"{s.scene_id}-q{q}", "thinking": s.thinking} for s in scenes for q in (1, 2)]
    labels = catalog(teacher_labeling(), thinking_records=thinking)
    labels["teacher_labels"], labels["teacher_rejects"] = Kept(), Kept()
    SequentialRunner().run(teacher_labeling(), labels)
    run = catalog(dataset_build(), teacher_labels=labels.load("teacher_labels"),
                  teacher_rejects=labels.load("teacher_rejects"), thinking_records=thinking, sampled_samples=samples)
    for name in ("train_examples", "val_examples", "sft_train_chat", "sft_val_chat", "summary_grammar"):
        run[name] = Kept()
    SequentialRunner().run(dataset_build(), run)
    train, val = run.load("train_examples"), run.load("val_examples")
    assert len(train) + len(val) == 40 and val
    assert not {e["video_id"] for e in train} & {e["video_id"] for e in val}
    grammar = run.load("summary_grammar")
    turns = [m[-1]["content"] for split in ("sft_train_chat", "sft_val_chat") for m in run.load(split)["messages"]]
    assert len(turns) == 40 and all(re.fullmatch(grammar, turn) for turn in turns)


def test_thinking_generation_in_memory_from_the_records_own_chains(tmp_path):
    """The reference backend replays each sample's chain through the thinking cache; the gate keeps what fits,
    the report carries its own line for the run summary; a second run gets the same from the cache, storing
    nothing twice."""
    import sqlite3

    from kedro_datasets.partitions import PartitionedDataset

    from thinking_summarizer.io.result_cache import ResponseCache
    from thinking_summarizer.pipelines.thinking_generation.pipeline import create_pipeline as thinking_generation

    chain = "She looks at the man in a grey coat and smiles; her eyes are bright. " * 6
    samples = [{"sample_id": f"s{i}", "source": "bench", "video_id": f"v{i}", "video_path": str(tmp_path / "v.mp4"),
                "question": "How does she feel?", "options": [], "problem_type": "free-form", "answer": "happy",
                "reference_context": "A room.", "reference_thinking": f"{chain}Clip {i}." if i < 3 else "Too short."}
               for i in range(4)]
    for attempt in range(2):
        run = catalog(thinking_generation(), sampled_samples=samples, tiny_thinker={})
        run["thinking_cache"] = MemoryDataset(ResponseCache(str(tmp_path / "cache.sqlite")), copy_mode="assign")
        run["thinking_shards"] = PartitionedDataset(path=str(tmp_path / "shards"), filename_suffix=".json",
                                                    dataset="thinking_summarizer.io.datasets.JSONDataset")
        SequentialRunner().run(thinking_generation(), run)
        records, report = run.load("thinking_records"), run.load("thinking_report")
        assert [r["sample_id"] for r in records] == ["s0", "s1", "s2"] and records[0]["thinking"].endswith("Clip 0.")
        assert (report["generated"], report["kept"], report["rejected"]) == (4, 3, {"too_short": 1})
        assert report["summary"].startswith("thinking_generation: 3 of 4 kept (length gate 200-6000 chars)")
        stored = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT count(*) FROM outcomes").fetchone()[0]
        assert stored == 4, attempt


def test_demo_data_in_memory_builds_the_tiny_models_once_and_names_them(tmp_path, monkeypatch):
    """demo_data's build writes the tiny thinker and SAM3 where their sections point (under a project's data/),
    says which it built, reuses them on a second run, and builds nothing where a section names a real model."""
    from thinking_summarizer.pipelines.demo_data.pipeline import create_pipeline as demo_data
    from thinking_summarizer.tiny_models import RECIPE_FILE

    monkeypatch.chdir(tmp_path)
    thinker, sam3 = "data/06_models/tiny/humanomni", "data/06_models/tiny/sam3"
    own = {"data_sampling": {"sources": {"own": {"path": "own.json"}}}}  # a user's source: no demo corpus is written
    built = []
    for recipes in ({}, {}, {"tiny_models": {"thinker": None, "sam3": None, "student": None}}):  # conf/gpu's nulls
        run = catalog(demo_data(), own | recipes)
        SequentialRunner().run(demo_data(), run)
        built.append((run.load("tiny_thinker"), run.load("tiny_sam3"),
                      (tmp_path / thinker / RECIPE_FILE).stat().st_mtime_ns))
    assert built[0][:2] == ({"model": thinker}, {"model": sam3}) and (tmp_path / sam3 / "config.json").is_file()
    assert built[1] == built[0]  # the same recipe: the folder is reused, not rebuilt
    assert built[2][:2] == ({}, {})  # conf/gpu's nulls: real models, nothing built or claimed


def test_video_segmentation_in_memory_from_demo_videos_to_masked_mp4s(tmp_path, tmp_path_factory):
    """Two demo videos through the whole stage: their chains (the reference backend, through the thinking cache),
    the extractive teacher's summary, its SAM3 prompts, the tiny SAM3's tracks: one masked MP4 and one mask file
    per video, and statistics over exactly these two."""
    from kedro_datasets.partitions import PartitionedDataset

    from thinking_summarizer.demo.corpus import write_corpus
    from thinking_summarizer.io.media import probe
    from thinking_summarizer.io.result_cache import ResponseCache
    from thinking_summarizer.pipelines.data_sampling.nodes import load_sources
    from thinking_summarizer.pipelines.video_segmentation.pipeline import create_pipeline as video_segmentation

    from .conftest import build_tiny

    sam3 = build_tiny(tmp_path_factory, "sam3")
    write_corpus(DEMO.model_copy(update={"root": str(tmp_path / "demo"), "n_scenes": 4}))
    sources = {name: {"path": str(tmp_path / "demo" / file), "video_root": str(tmp_path / "demo/videos")}
               for name, file in (("intentbench", "intentbench.json"), ("intenttrain", "intenttrain.json"))}
    samples, _ = load_sources(sources, typed("data_sampling"))
    assert len(samples) >= 2
    pipeline = video_segmentation()
    run = catalog(pipeline, {"video_segmentation": {"summarizer": "teacher", "from_val_split": 2,
                                                    "staging_dir": str(tmp_path / "staging"),
                                                    "sam3": {"model": str(sam3)}}},
                  val_examples=[{"sample_id": s["sample_id"]} for s in samples], sampled_samples=samples,
                  tiny_thinker={}, tiny_sam3={}, registered_student={}, ground_truth={})
    run["thinking_cache"] = MemoryDataset(ResponseCache(str(tmp_path / "cache.sqlite")), copy_mode="assign")
    for name, dataset, suffix in (("segmentation_results", "thinking_summarizer.io.datasets.JSONDataset", ".json"),
                                  ("segmentation_videos", "thinking_summarizer.io.datasets.StagedFileDataset", ".mp4"),
                                  ("segmentation_masks", "thinking_summarizer.io.datasets.StagedFileDataset",
                                   ".jsonl.gz")):
        run[name] = PartitionedDataset(path=str(tmp_path / name), dataset=dataset, filename_suffix=suffix)
    run["segmentation_plan"] = Kept()
    SequentialRunner().run(pipeline, run)
    plan, stats = run.load("segmentation_plan"), run.load("segmentation_stats")
    assert [r["sample_id"] for r in plan] == [s["sample_id"] for s in samples[:2]]
    assert all(r["thinking"] and r["prompts"] and not r["error"] for r in plan)
    assert (stats["samples"], stats["segmented"], stats["errors"]) == (2, 2, {})
    assert stats["summary"].startswith("video_segmentation: 2 of 2 videos")
    videos = sorted((tmp_path / "segmentation_videos").glob("*.mp4"))
    assert [v.stem for v in videos] == sorted(r["sample_id"] for r in plan)
    assert all(probe(v).num_frames == DEMO.video.num_frames for v in videos)
    assert len(list((tmp_path / "segmentation_masks").glob("*.jsonl.gz"))) == 2
