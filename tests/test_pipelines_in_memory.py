"""Pipelines run as Kedro's starters test them: an in-memory catalog and Kedro's SequentialRunner, no project."""

import json

import numpy as np
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from thinking_summarizer.io.media import VideoWriter
from thinking_summarizer.io.model_datasets import AdapterDataset, bind_models
from thinking_summarizer.pipelines.data_sampling.pipeline import create_pipeline as data_sampling
from thinking_summarizer.pipelines.teacher_labeling.pipeline import create_pipeline as teacher_labeling

from .conftest import REPO, at, run_params, typed

DEMO = typed("demo_data")
CATALOG = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())


class Kept(MemoryDataset):
    """An intermediate result the runner would release after its last reader; kept for the test to read."""

    def _release(self) -> None:
        pass


def catalog(pipeline: Pipeline, changes: dict | None = None, **data) -> DataCatalog:
    """An in-memory catalog for `pipeline`: every `params:` input it reads as Kedro hands it (the typed section of
    conf/base's parameters with `changes` merged in), every model it reads as conf/base's catalog entry (bound to
    the same parameters, as a session binds it), and `data`."""
    params = run_params(changes)
    reads = {name for node in pipeline.nodes for name in node.inputs}
    models = {name: CATALOG[name] for name in reads if "settings" in CATALOG.get(name, {})}  # bound to parameters
    run = DataCatalog.from_config(models)
    for name in reads:
        if name.startswith("params:"):
            run[name] = MemoryDataset(at(params, name.removeprefix("params:")))
    for name, value in data.items():
        run[name] = MemoryDataset(value)
    assert sorted(bind_models(run, params)) == sorted(models)
    return run


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
    # a run saves both through conf's entries, whose validators check each record against its model
    on_disk = DataCatalog.from_config({name: CATALOG[name] | {"filepath": str(tmp_path / f"{name}.json")}
                                       for name in ("sampled_samples", "teacher_labels")})
    on_disk.save("sampled_samples", sampled)
    on_disk.save("teacher_labels", labels.load("teacher_labels"))
    assert on_disk.load("sampled_samples") == sampled


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


def test_evaluation_in_memory_scores_a_student_adapter_against_the_teacher(tmp_path, tmp_path_factory, monkeypatch):
    """The evaluation stage on demo val examples labelled by the extractive teacher, with a student adapter folder
    (a random LoRA on a small base, as `evaluation.student` may name one): every system scored against the
    teacher (a user's corpus has no ground truth), the baseline as the teacher, the candidate promoted when no
    champion exists, and the report naming each system."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.pipelines.dataset_build.nodes import summary_grammar
    from thinking_summarizer.pipelines.evaluation.pipeline import create_pipeline as evaluation
    from thinking_summarizer.schemas import Summary
    from thinking_summarizer.student import CARD, load_student
    from thinking_summarizer.teachers import build_teacher
    from thinking_summarizer.text.summary_format import category_lookup, render
    from thinking_summarizer.tiny_models.student import build_tiny_student

    from .conftest import small_student, tiny_model_dir

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # no champion registered
    params = run_params()
    teacher = build_teacher(params.teacher_labeling, params.vocabulary, params.summary_qc, params.openai_client)
    lookup = category_lookup(params.vocabulary)
    val = []
    for i in range(4):
        scene = make_scene(i, DEMO)
        summary = teacher.label_all([(scene.scene_id, scene.thinking)])[0].summary
        val.append({"sample_id": scene.scene_id, "video_id": scene.scene_id, "source": "demo",
                    "problem_type": "multiple choice", "thinking": scene.thinking, "summary": summary,
                    "markdown": render(Summary(**summary), lookup)})
    base = tiny_model_dir(tmp_path_factory, "student-base")
    base.mkdir(parents=True)
    texts = [e["thinking"] for e in val] + [e["markdown"] for e in val]
    build_tiny_student(base, small_student(), texts, texts)
    torch.manual_seed(0)
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                   LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)  # the adapter folder carries its tokenizer
    (adapter / CARD).write_text(json.dumps({"base_model": str(base), "instruction": "Summarise the reasoning.",
                                            "grammar": summary_grammar(params.vocabulary, params.summary_qc)}))
    pipeline = evaluation()
    registered = {"name": "in-memory-student", "version": "1", "model_uri": str(adapter)}
    run = catalog(pipeline, {"evaluation": {"include_untrained": False, "max_new_tokens": 48, "device": "cpu"}},
                  val_examples=val, registered_student=registered, ground_truth={})
    for name in ("evaluation_outputs", "evaluation_results", "promotion_decision", "evaluation_report_latest"):
        run[name] = Kept()
    SequentialRunner().run(pipeline, run)
    results, decision = run.load("evaluation_results"), run.load("promotion_decision")
    assert set(results["systems"]) == {"student", "teacher", "baseline"} and results["with_truth"] == 0
    teacher_scores = results["systems"]["teacher"]["overall"]
    assert teacher_scores["format_valid"] == 1.0 and "object_f1/teacher" not in teacher_scores  # not scored on itself
    assert results["systems"]["baseline"]["overall"]["object_f1/teacher"] == 1.0  # the same extractive teacher
    # the student scored is the named adapter: its rows are that adapter's own greedy summaries
    written = [row["text"] for row in run.load("evaluation_outputs")["systems"]["student"]["rows"]]
    assert all(written) and written == load_student(str(adapter), merge=True).summarize([e["thinking"] for e in val], 4, 48).texts
    assert (decision["promoted"], decision["reason"]) == (True, "there was no champion yet")
    assert decision["metric"] == "object_f1/teacher"  # no ground truth: the teacher is the reference
    report = run.load("evaluation_report_latest")
    assert all(system in report for system in ("student", "teacher", "baseline"))


def test_lora_training_in_memory_builds_the_tiny_base_trains_and_releases(tmp_path, monkeypatch):
    """lora_training on a small train split: demo_data's node builds the tiny base from its recipe (under the
    project's data/), the recipe's trainer knobs reach the trainer, the adapter is saved with its card, and the
    release names what the registry is to hold (saving it to `registered_student` registers it in a run)."""
    import json
    from pathlib import Path

    from datasets import Dataset

    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.pipelines.lora_training.pipeline import create_pipeline as lora_training
    from thinking_summarizer.student import CARD

    from .conftest import small_student

    monkeypatch.chdir(tmp_path)  # the tiny base is only built under a project's data/
    chats = [{"messages": [{"role": "system", "content": "Summarise."},
                           {"role": "user", "content": make_scene(i, DEMO).thinking},
                           {"role": "assistant", "content": f"## Key points\n1. point {i}"}]} for i in range(12)]
    recipe = small_student().model_dump() | {"trainer": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                                                         "gradient_accumulation_steps": 1, "logging_steps": 1}}
    pipeline = lora_training()
    run = catalog(pipeline, {"tiny_models": {"student": recipe},
                             "lora_training": {"base_model": "data/06_models/tiny/student-base",
                                               "output_dir": str(tmp_path / "runs"), "device": "cpu"}},
                  sft_train_chat=Dataset.from_list(chats[:8]), sft_val_chat=Dataset.from_list(chats[8:]),
                  summary_grammar="## Key points\n.*")
    for name in ("student_base", "training_result", "registered_student"):
        run[name] = Kept()
    run["student_adapter"] = AdapterDataset(filepath=str(tmp_path / "student_adapter.json"))
    SequentialRunner().run(pipeline, run)
    base, training, release = (run.load(n) for n in ("student_base", "training_result", "registered_student"))
    trained = run.load("student_adapter")
    assert trained.path == training["adapter_dir"] == release["adapter_dir"] and trained.card["base_model"] == base["base_model"]
    assert base["tiny"] is True and base["trainer"]["num_train_epochs"] == 1
    assert (Path("data/06_models/tiny/student-base") / "config.json").is_file()
    assert training["metrics"]["steps"] == 2 and training["summary"].startswith("lora_training: 2 steps")
    adapter = Path(training["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / CARD).read_text())["grammar"] == "## Key points\n.*"
    assert (release["adapter_dir"], release["name"], release["aliases"]) == (
        str(adapter), "thinking-summarizer-lora", ["candidate"])
    assert release["tags"]["training_id"] == training["training_id"] and release["verify"]["logit_tolerance"] > 0
