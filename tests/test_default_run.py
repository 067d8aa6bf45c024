"""The whole default chain, as `kedro run` runs it (at test size): every pipeline's outputs, the MLflow runs
and registry, the evaluation report against the logged numbers, the promotion rule, segmentation results."""

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from thinking_summarizer.pipelines.evaluation.nodes import flatten_results
from thinking_summarizer.segmentation.masks import read_masks, score_against_truth
from thinking_summarizer.student import load_student
from thinking_summarizer.student.registry import MODEL_CONFIG

from .conftest import FAST_PARAMS, documented_kedro_command, kedro_cli, load_latest, user_env


@pytest.fixture(scope="module")
def client(default_run):
    project, _ = default_run
    uri = f"sqlite:///{project / 'mlflow.db'}"
    assert (project / "mlflow.db").is_file(), "the relative tracking URI resolves to the project root"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def stage_runs(client: MlflowClient, pipelines: str = "__default__", newest: bool = False) -> tuple:
    """The parent run of the project's `kedro run --pipelines <pipelines>` (the only one, or the `newest`) and its
    child runs by stage."""
    experiment = client.get_experiment_by_name("thinking-summarizer").experiment_id
    runs = client.search_runs([experiment], f"tags.`kedro.pipelines` = '{pipelines}'",
                              order_by=["attributes.start_time DESC"])
    parent = runs[0]
    if not newest:
        (parent,) = runs
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return parent, {child.data.tags["stage"]: child for child in children}


def test_one_kedro_run_is_one_parent_run_with_a_child_per_stage(default_run, client):
    project, _ = default_run
    experiment = client.get_experiment_by_name("thinking-summarizer")
    everything = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_id for r in everything if "mlflow.parentRunId" not in r.data.tags}
    # every run in the store is a kedro run's parent or a child of one (no run opened by a node on its own)
    assert all(r.data.tags.get("kedro.session_id") not in (None, "None") for r in everything
               if r.info.run_id in parents)
    assert all(r.data.tags["mlflow.parentRunId"] in parents for r in everything if r.info.run_id not in parents)
    parent, children = stage_runs(client)
    assert len(children) == 3 == len(client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"))
    assert sorted(children) == ["evaluation", "segmentation", "training"]
    assert {r.info.status for r in [parent, *children.values()]} == {"FINISHED"}
    # each child lasts its stage's own time (segmentation is planned early and run last: not the whole run)
    for stage, child in children.items():
        own = float(child.data.tags["stage_seconds"])
        assert child.info.end_time - child.info.start_time == pytest.approx(own * 1000, abs=2), stage
    assert sum(float(c.data.tags["stage_seconds"]) for c in children.values()) * 1000 < (
        parent.info.end_time - parent.info.start_time)
    # parameters once, on the parent, with this run's overrides; the children carry none
    assert parent.data.params["lora_training.lora.r"] == "64"
    assert parent.data.params["data_sampling.n_samples"] == "36"
    assert not children["evaluation"].data.params and not children["segmentation"].data.params
    assert set(children["training"].data.params) <= set(MODEL_CONFIG)  # MLflow logs the model's load config
    assert parent.data.tags["mlflow.source.git.commit"] and parent.info.run_name.startswith("kedro-__default__-")
    # the training child: every step's loss, the adapter, the splits; the registered version was logged there
    training = children["training"]
    result = load_latest(project, "training_result")
    assert [m.step for m in client.get_metric_history(training.info.run_id, "train_loss")] == [
        h["step"] for h in result["loss_history"] if "loss" in h]
    assert {"adapter", "loss_curve.png", "training_config.yml"} <= {
        a.path for a in client.list_artifacts(training.info.run_id)}
    assert sorted(d.dataset.name for d in training.inputs.dataset_inputs) == ["train_chat", "val_chat"]
    registered = load_latest(project, "registered_student")
    assert client.get_model_version(registered["name"], registered["version"]).run_id == training.info.run_id
    # the alias moved by the evaluation is a tag of the run that decided it
    assert children["evaluation"].data.tags["registry.alias.champion"] == \
        f"{registered['name']} version {registered['version']} (was unset)"


def test_every_stage_produced_its_outputs(default_run):
    project, result = default_run
    thinking = load_latest(project, "thinking_records")
    report = load_latest(project, "thinking_report")
    assert len(thinking) == 36 and report["accuracy_by_problem_type"]["multiple choice"] == 1.0
    labels, rejects = load_latest(project, "teacher_labels"), load_latest(project, "teacher_rejects")
    assert len(labels) + len(rejects) == 36 and len(labels) >= 30
    train, val = load_latest(project, "sft_train_chat"), load_latest(project, "sft_val_chat")
    assert len(train) + len(val) == load_latest(project, "dataset_qc_report")["kept"]
    assert not set(train["video_id"]) & set(val["video_id"])
    assert [m["role"] for m in val[0]["messages"]] == ["system", "user", "assistant"]
    # the closing summary: one readable line per stage, in order, with this run's numbers
    output = result.stdout + result.stderr
    # training shows one labelled bar with its losses, not the trainer's raw dict per logging step
    assert "training student-base + LoRA r64" in output and "loss=" in output
    assert "{'loss'" not in output and "'train_runtime'" not in output
    block = output[output.index("Run summary ("):].splitlines()[1:13]
    assert [line.split(":")[0].split(" (")[0].strip() for line in block[:11]] == [
        "data_sampling", "thinking_generation", "teacher_labeling", "dataset_build", "dataset_build",
        "lora_training", "registry", f"evaluation on {len(val)} val samples", "promotion", "video_segmentation",
        "outputs"]
    assert block[0].startswith("  data_sampling: 36 samples (") and "synthetic demo corpus" in block[0]
    assert not any("{" in line or "}" in line for line in block[:11]), block  # words and numbers, no reprs
    assert f"{len(labels)} labelled" in block[2]
    quality = load_latest(project, "teacher_usage")["quality"]
    assert quality["labels_checked"] == len(labels)
    assert f"label check: cut key points {quality['cut_key_points']}, duplicate key points" in block[2]
    # and where MLflow has it: the one parent run of this kedro run, with its children
    parent, _ = stage_runs(MlflowClient(f"sqlite:///{project / 'mlflow.db'}"))
    assert block[11] == (f"  mlflow: run {parent.info.run_name} in experiment thinking-summarizer (child runs "
                         f"evaluation, segmentation, training); `make mlflow-ui`")


def test_report_numbers_equal_the_logged_ones_and_the_first_candidate_is_promoted(default_run, client):
    project, _ = default_run
    run = stage_runs(client)[1]["evaluation"]
    html = load_latest(project, "evaluation_report")
    cells = re.findall(r"data-metric='([^']+)'>([0-9.]+)<", html)
    assert len(cells) > 30
    for key, shown in cells:
        assert float(shown) == pytest.approx(run.data.metrics[key], abs=5e-5), key
    assert run.data.metrics == pytest.approx(flatten_results(load_latest(project, "evaluation_results")))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "evaluation_report.html", "per_sample.json", "metrics.png", "recall_by_source.png", "latency.png"}
    # what a reader needs: the newest report at a fixed path, where it is logged, a glossary, and a word
    # that the default teacher and the baseline are one system
    assert (project / "data/08_reporting/evaluation_report_latest.html").read_text() == html
    assert "the evaluation child run of this kedro run" in html and "meaning" in html and "harmonic mean" in html
    assert "'teacher' and 'baseline' wrote identical summaries" in unescape(html)
    # MLflow as its users read it: a model-development experiment, datasets as inputs, the standard commit tag
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["val_examples"]
    decision = load_latest(project, "promotion_decision")
    registered = load_latest(project, "registered_student")
    assert decision["promoted"] and decision["reason"] == "there was no champion yet"
    assert str(client.get_model_version_by_alias(registered["name"], "champion").version) == registered["version"]
    assert run.data.tags["promoted"] == "True"
    version = client.get_model_version(registered["name"], registered["version"])
    assert float(version.tags["eval.format_valid"]) == pytest.approx(run.data.metrics["student/format_valid"], abs=5e-5)


def test_a_candidate_that_does_not_beat_the_champion_by_the_margin_is_not_promoted(default_run, client):
    project, _ = default_run
    first = load_latest(project, "registered_student")
    first_training = load_latest(project, "training_result")
    # the same config and seed retrained: an equal score, which does not clear the margin
    result = subprocess.run(
        [str(Path(sys.executable).with_name("kedro")), "run", "--pipelines", "lora_training,evaluation",
         "--params", FAST_PARAMS + ",lora_training.retrain=true,evaluation.include_untrained=false"],
        cwd=project, capture_output=True, text=True, env=user_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    second = load_latest(project, "registered_student")
    decision = load_latest(project, "promotion_decision")
    assert int(second["version"]) == int(first["version"]) + 1
    assert decision["champion_version"] == first["version"] and not decision["promoted"]
    assert decision["candidate_score"] == pytest.approx(decision["champion_score"])
    assert "< champion" in decision["reason"]
    assert str(client.get_model_version_by_alias(first["name"], "champion").version) == first["version"]
    assert str(client.get_model_version_by_alias(first["name"], "candidate").version) == second["version"]
    # the retrain wrote a new folder and a new, differently named run; the first adapter is intact
    second_training = load_latest(project, "training_result")
    assert second_training["adapter_dir"] != first_training["adapter_dir"]
    assert (project / first_training["adapter_dir"] / "adapter_model.safetensors").is_file()
    # logged in this kedro run's own parent: a training child (where the new version came from) and an evaluation
    parent, children = stage_runs(client, "evaluation,lora_training")
    assert sorted(children) == ["evaluation", "training"]
    assert client.get_model_version(second["name"], second["version"]).run_id == children["training"].info.run_id
    assert "registry.alias.champion" not in children["evaluation"].data.tags


def test_segmentation_results_videos_and_masks(default_run, client):
    project, _ = default_run
    results = {k: v() for k, v in load_latest(project, "segmentation_results").items()}
    videos, masks = load_latest(project, "segmentation_videos"), load_latest(project, "segmentation_masks")
    assert len(results) == 2 and all(r["status"] == "ok" for r in results.values())
    for sid, result in results.items():
        assert result["prompts"] and result["thinking"] and result["summary"]
        capture = cv2.VideoCapture(videos[sid]())
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == result["frames_tracked"] == 24
        assert sum(1 for _ in read_masks(masks[sid]())) == 24
        # the reported J&F is what the stored masks and the demo's ground truth give, recomputed here
        scene = load_latest(project, "ground_truth")[Path(result["video_path"]).stem]
        labels = np.load(project / scene["masks"])["masks"]  # stored relative to the project
        again = score_against_truth(masks[sid](), labels, [o["object_id"] for o in scene["objects"]])
        assert again["mean_j_and_f"] == pytest.approx(result["ground_truth"]["mean_j_and_f"])
    stats = load_latest(project, "segmentation_stats")
    run = stage_runs(client)[1]["segmentation"]
    assert run.data.metrics["frame_coverage"] == pytest.approx(stats["frame_coverage"])


def test_the_students_own_summaries_drive_sam3(default_run, client, tmp_path):
    """The path the product exists for: video -> thinking -> the registered student's summary -> SAM3."""
    project = shutil.copytree(default_run[0], tmp_path / "project")  # the other tests read the teacher's run
    result = subprocess.run(
        [str(Path(sys.executable).with_name("kedro")), "run", "--pipelines", "video_segmentation",
         "--params", FAST_PARAMS + ",video_segmentation.summarizer=student"],
        cwd=project, capture_output=True, text=True, env=user_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # logged in the copy's own store, not in the one this test process last pointed MLflow at
    assert list(stage_runs(MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), "video_segmentation")[1]) == [
        "segmentation"]
    results = {k: v() for k, v in load_latest(project, "segmentation_results").items()}
    registered = load_latest(project, "registered_student")
    assert len(results) == 2
    for row in results.values():
        assert row["summary"] and row["thinking"]  # written by the student, from the generated thinking
        # a briefly trained student may name no prompt: then the sample says so, else SAM3 tracked its prompts
        assert (row["status"], row.get("error")) == ("error", "the summary names no SAM3 prompt") or (
            row["status"] == "ok" and row["prompts"] and row["frames_tracked"] == 24)
    # the summaries are the registered student's own greedy output for that thinking
    rows = sorted(results.values(), key=lambda r: r["sample_id"])
    student = load_student(registered["model_uri"], merge=True)
    assert student.summarize([r["thinking"] for r in rows], 8, 384).texts == [r["summary"] for r in rows]
    # "segment your own videos", the command docs/cli.md gives, on the default setup: the tiny random thinker runs
    # on the new video and writes no thinking, the console says so, and the earlier run's masked videos stay where
    # notebook 04 reads them
    earlier = {sid: Path(load()).read_bytes() for sid, load in load_latest(project, "segmentation_videos").items()}
    clip = next((project / "data/01_raw/demo/videos").glob("*.mp4"))
    (project / "demo_config.json").write_text(json.dumps({"samples": [{"video_path": str(clip),
                                                                     "question": "How does she feel?"}]}))
    own = kedro_cli(project, *documented_kedro_command("video_segmentation.demo_config="))
    assert own.returncode == 0, own.stderr[-3000:]
    assert re.search(r"Sample demo-000-\w+ \(.*scene_\d+\.mp4\) not segmented: no thinking in the generation",
                     own.stdout + own.stderr), own.stderr[-3000:]
    after = load_latest(project, "segmentation_videos")
    assert {sid: Path(after[sid]()).read_bytes() for sid in earlier} == earlier
    assert load_latest(project, "segmentation_stats")["samples"] == 1


def test_the_documented_commands_run_as_written(default_run, tmp_path):
    """docs/cli.md's commands word for word, on a copy of the default run whose conf/local holds the test size
    (the knobs FAST_PARAMS gives the other tests on the command line; the untrained base, scored by the default
    run, is not scored again). Rerunning training reuses the finished one: the reuse is recorded on the rerun's
    parent (`training.reused`), not as an empty training child that the UI lists and notebook 03 used to plot
    (TypeError: no numeric data to plot); the other notebooks read nothing a rerun changes (test_surfaces runs
    each on the default run)."""
    import nbformat
    import yaml
    from nbclient import NotebookClient
    from omegaconf import OmegaConf

    project = shutil.copytree(default_run[0], tmp_path / "project")
    fast = OmegaConf.to_container(OmegaConf.from_dotlist(FAST_PARAMS.split(",") + ["evaluation.include_untrained=false"]))
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(fast))

    shard = kedro_cli(project, *documented_kedro_command("--nodes generate_thinking"))
    assert shard.returncode == 0, shard.stderr[-3000:]
    assert (project / "data/02_intermediate/thinking_shards/shard-001-of-004.json").is_file()

    # the README's Daily-Omni line without its files fails, and the next documented command still gets the demo's
    # numbers: the failed run destroyed nothing a later stage reads
    failed = kedro_cli(project, *documented_kedro_command("sources.daily_omni.path="))
    assert failed.returncode != 0
    chosen = kedro_cli(project, *documented_kedro_command("--pipelines lora_training,evaluation"))
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    assert "(child runs evaluation" in chosen.stdout + chosen.stderr  # training reused: no empty training child
    parent, children = stage_runs(MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), "evaluation,lora_training",
                                  newest=True)
    assert list(children) == ["evaluation"]
    assert parent.data.tags["training.reused"] == "true" and parent.data.tags["training.training_id"]
    book = nbformat.read(project / "notebooks" / "03_mlflow_runs.ipynb", as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute(env=user_env())
    images = [o for cell in book.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the loss curve of the training that trained is plotted"
    results = load_latest(project, "evaluation_results")
    assert results["with_truth"] == results["samples"] > 0
    assert results["systems"]["teacher"]["overall"]["object_f1/truth"] > 0.5

    other = kedro_cli(project, *documented_kedro_command("evaluation.student="))
    assert other.returncode == 0, other.stderr[-3000:]
    assert "Evaluating student models:/thinking-summarizer-lora@champion" in other.stdout + other.stderr
    assert load_latest(project, "evaluation_outputs")["student_source"] == "models:/thinking-summarizer-lora@champion"


def test_the_documented_python_snippet_loads_the_champion_from_another_folder(default_run, client, tmp_path):
    """docs/cli.md's Python block, run as written (only the store's path filled in) outside the project: it prints
    the champion's greedy summary of the documented thinking."""
    project, _ = default_run
    block = re.search(r"```python\n(.*?)```", (Path(__file__).parents[1] / "docs/cli.md").read_text(), re.S).group(1)
    code = block.replace("sqlite:////abs/path/to/thinking-summarizer/mlflow.db", f"sqlite:///{project / 'mlflow.db'}")
    assert code != block
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=user_env(),
                         timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    thinking = re.search(r'thinking = \("(.*?)"\)', block).group(1)
    champion = load_student("models:/thinking-summarizer-lora@champion", merge=True)  # the client fixture's store
    assert ran.stdout.strip() == champion.summarize([thinking], 8, 384).texts[0].strip()
