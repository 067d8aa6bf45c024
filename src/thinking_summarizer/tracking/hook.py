"""One MLflow parent run per `kedro run`, owned by one hook; each tracked stage a nested child run.

A stage is named by its nodes' tag (`stage_tag("training")` in a pipeline.py). While a node of a stage runs and
while its outputs are saved, that stage's child run is the active run: the trainer's per-step metrics, the
registered model and the stage's tracking records (`MlflowRecordDataset`) land there. Parameters are logged once,
on the parent. kedro-mlflow's hook opens one flat run and logs each node's parameters into it; a run with
children per stage is not its model, so this hook follows its pattern (hook owns the run, catalog logs) itself.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node
from mlflow import MlflowClient

from thinking_summarizer.schemas.params.shared import Tracking

if TYPE_CHECKING:
    from thinking_summarizer.hooks import ParametersHook
from thinking_summarizer.tracking.store import configure, flatten, start_run

log = logging.getLogger(__name__)
PREFIX = "mlflow_run."


def stage_tag(stage: str) -> str:
    """The node tag that puts a node's logging into the `stage` child run."""
    return PREFIX + stage


def _stage(node: Node | None) -> str | None:
    """The stage a node's tag names, if any."""
    tags = sorted(node.tags) if node else []
    return next((tag.removeprefix(PREFIX) for tag in tags if tag.startswith(PREFIX)), None)


def _what_ran(run_params: dict[str, Any], pipelines: list[str]) -> str:
    """A run's name part: the nodes when `--nodes` picked them (`__default__` says nothing then), else the
    pipelines, with `from-`/`to-` when the run was cut."""
    nodes = sorted(run_params.get("node_names") or [])
    if nodes:
        return "+".join(nodes) if len(nodes) <= 2 else f"{nodes[0]}+{len(nodes) - 1}-more"
    cut = [f"from-{n}" for n in sorted(run_params.get("from_nodes") or [])]
    cut += [f"to-{n}" for n in sorted(run_params.get("to_nodes") or [])]
    return "+".join(pipelines + cut)


def _empty(run_id: str) -> bool:
    """Whether a run holds nothing but tags: no metric, parameter, dataset input or artifact."""
    client = MlflowClient()
    run = client.get_run(run_id)
    return not (run.data.metrics or run.data.params or run.inputs.dataset_inputs or client.list_artifacts(run_id))


class TrackingHook:
    """Points MLflow at the configured store; opens the parent run before the pipeline, the stage child runs as
    their nodes come, and closes them all (FAILED when the pipeline fails)."""

    def __init__(self, parameters: ParametersHook) -> None:
        self._parameters = parameters  # the run's parameters, read and checked once by the ParametersHook
        self._cfg: Tracking | None = None
        self._parent: str | None = None
        self._run_name: str | None = None
        self._children: dict[str, str] = {}
        self._stage: str | None = None
        self._seconds: dict[str, float] = {}  # each stage's own time: stages interleave
        self._since = 0.0

    @hook_impl
    def after_context_created(self, context) -> None:
        self._cfg = self._parameters.typed.tracking
        configure(self._cfg, context.project_path)

    @hook_impl(trylast=True)  # after the parameter check, so a refused run opens no MLflow run
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        names = sorted(run_params.get("pipeline_names") or ["__default__"])  # Kedro's CLI hands them over unordered
        # Kedro 1.x hands the session id over as `run_id`
        tags = {"kedro.session_id": str(run_params.get("run_id") or run_params.get("session_id")),
                "kedro.pipelines": ",".join(names), "kedro.env": str(run_params.get("env") or "local")}
        run = start_run(self._cfg, "kedro-" + _what_ran(run_params, names), tags)
        self._parent, self._children, self._stage, self._seconds = run.info.run_id, {}, None, {}
        self._run_name = run.info.run_name
        mlflow.log_params(flatten(self._parameters.raw))

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self._enter(_stage(node))

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        self._enter(_stage(node))

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close("FINISHED")

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close("FAILED")

    def describe(self) -> str | None:
        """Where this run is logged, for the run summary (None before a run)."""
        if self._run_name is None:
            return None
        kept = sorted(stage for stage, run_id in self._children.items() if not _empty(run_id))
        return (f"mlflow: run {self._run_name} in experiment {self._cfg.experiment} (child runs "
                f"{', '.join(kept) or 'none'}); `make mlflow-ui`")

    def _enter(self, stage: str | None) -> None:
        if self._parent is None or stage == self._stage:
            return
        if self._stage:
            self._leave()
            mlflow.end_run()
            self._stage = None
        if stage:
            self._since = time.time()
            known = self._children.get(stage)
            run = mlflow.start_run(run_id=known, nested=True, run_name=None if known else stage,
                                   tags=None if known else {"stage": stage})
            self._children[stage], self._stage = run.info.run_id, stage

    def _leave(self) -> None:
        self._seconds[self._stage] = self._seconds.get(self._stage, 0.0) + time.time() - self._since

    def _own_duration(self, stage: str, status: str) -> None:
        """A stage's child run ends its own seconds after it started (tag `stage_seconds`), not at the last of its
        nodes: segmentation is planned early and segmented last, and would otherwise span the whole run."""
        client, run_id = MlflowClient(), self._children[stage]
        seconds = self._seconds.get(stage, 0.0)
        client.set_tag(run_id, "stage_seconds", f"{seconds:.3f}")  # a tag: the metrics are the stage's own
        started = client.get_run(run_id).info.start_time
        client.set_terminated(run_id, status, end_time=started + int(seconds * 1000))

    def _prune(self, stage: str) -> None:
        """At the end of a run, a stage child that holds nothing but tags (a training reused from an earlier run)
        is folded into the parent: its tags become `<stage>.<tag>` there and the empty child is deleted, so neither
        the UI nor a notebook meets an empty run. Not earlier: stages interleave, and a stage's tags may come before
        its metrics."""
        client, run_id = MlflowClient(), self._children[stage]
        if not _empty(run_id):
            return
        for key, value in client.get_run(run_id).data.tags.items():
            if not key.startswith("mlflow.") and key != "stage":
                client.set_tag(self._parent, f"{stage}.{key}", value)
        client.delete_run(run_id)
        del self._children[stage]

    def _close(self, status: str) -> None:
        if self._parent is None:
            return
        if self._stage:
            self._leave()
        while (active := mlflow.active_run()) is not None:
            mlflow.end_run(status)
            if active.info.run_id == self._parent:
                break
        if status == "FINISHED":
            for stage in list(self._children):
                self._prune(stage)
        for stage in self._children:
            self._own_duration(stage, status)
        log.info("MLflow: run %s (%s) in experiment %s, child runs %s", self._parent, status.lower(),
                 self._cfg.experiment, ", ".join(f"{k} {v}" for k, v in self._children.items()) or "none")
        self._parent, self._stage = None, None
