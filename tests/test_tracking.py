"""What a `kedro run` leaves in MLflow when it is refused, when it fails before a stage, and inside one."""

import pytest
from datasets import Dataset
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
import mlflow
from mlflow import MlflowClient

from .conftest import copy_project, kedro_cli, run_session

SMALL = {"demo_data": {"n_scenes": 12}, "data_sampling": {"n_samples": 6}}


def runs(project):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("thinking-summarizer")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_a_refused_run_opens_no_run_and_a_failed_one_is_closed_failed(project):
    refused = kedro_cli(project, "run", "--params", "data_sampling.n_samples=-5,lora_training.trainer.learning_rat=0.1")
    said = refused.stderr + refused.stdout
    assert refused.returncode != 0 and "data_sampling.n_samples" in said
    # a misspelt override is named with the key it was meant to be, not silently ignored
    assert ("lora_training.trainer.learning_rat: not a parameter of conf/base (did you mean "
            "lora_training.trainer.learning_rate?)") in said
    assert runs(project) == []  # the parameter check runs before the tracking hook opens anything
    failed = kedro_cli(project, "run", "--pipelines", "evaluation")  # nothing to evaluate yet
    assert failed.returncode != 0 and "val_examples" in failed.stderr + failed.stdout
    (parent,) = runs(project)
    assert parent.info.status == "FAILED" and parent.data.tags["kedro.pipelines"] == "evaluation"
    assert parent.data.params["evaluation.promotion.alias"] == "champion"
    assert parent.info.run_name.startswith("kedro-evaluation-") and parent.data.tags["kedro.session_id"] != "None"
    # a run of chosen nodes is named by them, not by the `__default__` pipeline they were picked from
    kedro_cli(project, "run", "--nodes", "score_systems")
    (nodes_run,) = [r for r in runs(project) if r.info.run_id != parent.info.run_id]
    assert nodes_run.info.run_name.startswith("kedro-score_systems-")


def test_a_stage_that_fails_fails_its_child_and_its_parent(project):
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        for split in ("train", "val"):
            catalog.save(f"sft_{split}_chat", Dataset.from_list([{"sample_id": "x"}]))  # no `messages` column
    result = kedro_cli(project, "run", "--pipelines", "lora_training")
    assert result.returncode != 0 and "messages" in result.stderr + result.stdout
    by_stage = {r.data.tags.get("stage"): r for r in runs(project)}
    assert sorted(by_stage, key=str) == [None, "training"]
    parent, child = by_stage[None], by_stage["training"]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert (parent.info.status, child.info.status) == ("FAILED", "FAILED")


@pytest.mark.parametrize("name", ["training_tracking", "evaluation_tracking"])
def test_a_tracking_record_is_not_read_back(project, name):
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        with pytest.raises(Exception, match="make mlflow-ui"):
            session.load_context().catalog.load(name)


def test_two_projects_run_in_one_process_each_log_to_their_own_store(tmp_path):
    """MLflow exports the URI it is pointed at; a second session must still use its own project's store."""
    first, second = tmp_path / "first", tmp_path / "second"
    for project in (first, second):
        project.mkdir()
        copy_project(project)
        run_session(project, ["data_sampling"], SMALL)
    for project in (first, second):
        (parent,) = runs(project)
        assert parent.info.status == "FINISHED" and parent.data.tags["kedro.pipelines"] == "data_sampling"


def test_a_run_the_caller_has_open_holds_the_kedro_run_and_stays_open(project):
    """A notebook with its own run open: the kedro run nests under it instead of refusing to start."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    with mlflow.start_run(experiment_id=mlflow.set_experiment("notebook").experiment_id) as outer:
        run_session(project, ["data_sampling"], SMALL)
        assert mlflow.active_run().info.run_id == outer.info.run_id
    (parent,) = runs(project)
    assert parent.data.tags["mlflow.parentRunId"] == outer.info.run_id and parent.info.status == "FINISHED"


@pytest.mark.parametrize("pipeline", ["demo_data", "data_sampling", "thinking_generation", "teacher_labeling",
                                      "dataset_build", "lora_training", "evaluation", "video_segmentation"])
def test_a_misspelt_key_stops_every_pipeline_before_any_node(project, pipeline):
    """`kedro run --pipelines <p> --params <p>.<misspelt>=1`: refused before a node runs, the key named."""
    from thinking_summarizer.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=rf"{pipeline}\.batch_sise: not a parameter of conf/base"):
        run_session(project, [pipeline], {pipeline: {"batch_sise": 1}})
    assert not any((project / "data").rglob("*.json*")) and runs(project) == []


def test_a_value_of_the_wrong_kind_stops_the_run_before_any_node_and_documented_ones_pass(project):
    """What `--params` gives as text where conf/base has a number (or a list where it has text) is named before a
    node runs, not found by the trainer minutes later; null, and any kind where conf/base says `auto`, pass."""
    from kedro.config import OmegaConfigLoader
    from omegaconf import OmegaConf

    from thinking_summarizer.errors import ConfigurationError
    from thinking_summarizer.schemas import override_errors
    from thinking_summarizer.settings import CONFIG_LOADER_ARGS

    wrong = OmegaConf.to_container(OmegaConf.from_dotlist([  # as `kedro run --params` parses them
        "lora_training.trainer.learning_rate=abc", "thinking_generation.openai.concurrency=[4]",
        "lora_training.retrain=1"]))
    with pytest.raises(ConfigurationError) as refused:
        run_session(project, ["lora_training"], wrong)
    assert "lora_training.trainer.learning_rate: 'abc' is text, conf/base has a number (0.0002)" in str(refused.value)
    assert "thinking_generation.openai.concurrency: [4] is a list, conf/base has a number (16)" in str(refused.value)
    assert "lora_training.retrain: 1 is a number, conf/base has true or false (False)" in str(refused.value)
    assert not any((project / "data").rglob("*.json*")) and runs(project) == []
    base = OmegaConfigLoader(str(project / "conf"), env="base", **CONFIG_LOADER_ARGS | {"default_run_env": "base"})
    fine = OmegaConf.to_container(OmegaConf.from_dotlist([
        "lora_training.retrain=true", "lora_training.trainer.learning_rate=1e-4", "lora_training.trainer.padding_free=false",
        "thinking_generation.openai.num_frames=null", "evaluation.student=models:/thinking-summarizer-lora@champion"]))
    assert override_errors(fine, base["parameters"], []) == []
