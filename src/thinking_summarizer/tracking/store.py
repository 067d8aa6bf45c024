"""MLflow: where runs go (sqlite store at the project root by default, a server by config), how a run starts,
and parameters as MLflow params."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from thinking_summarizer.schemas.params.shared import Tracking

ENV = "MLFLOW_TRACKING_URI"
# the user's own setting, read before this process points MLflow anywhere: `mlflow.set_tracking_uri` exports the
# variable itself (for subprocesses), so read later it would hand a second session the first project's store
USER_URI = os.environ.get(ENV)
# MLflow 3's UI opens a "GenAI" experiment on its trace overview; this project's experiment is model development
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def resolve_uri(uri: str, project_path: Path) -> str:
    """A relative sqlite path is made absolute against the project root, so every process finds one store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).is_absolute():
        return prefix + str((project_path / uri[len(prefix):]).resolve())
    return uri


def configure(cfg: Tracking, project_path: Path) -> str:
    """Point this process's MLflow at the configured store; `MLFLOW_TRACKING_URI` in the environment wins."""
    uri = USER_URI or resolve_uri(cfg.uri, project_path)
    mlflow.set_tracking_uri(uri)
    return uri


def start_run(tracking_cfg: Tracking, name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
    """Start a run in the configured experiment: a unique name (`name` and the start time), `tags`, and MLflow's
    standard source tags, so the UI shows the commit where it shows it for any project."""
    experiment = mlflow.set_experiment(tracking_cfg.experiment)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    commit = git_commit()
    tags = tags | {"mlflow.source.name": "kedro run", "mlflow.source.type": "PROJECT",
                   "mlflow.source.git.commit": commit.removesuffix("-dirty"),
                   "git_dirty": str(commit.endswith("-dirty")).lower()}
    # nested under a run the caller already has open (a notebook's), rather than refusing to start
    return mlflow.start_run(run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags,
                            nested=mlflow.active_run() is not None)


def git_commit(path: Path | None = None) -> str:
    """The checkout's commit (with `-dirty` when it has changes), or `unknown` outside git."""
    try:
        cwd = path or Path.cwd()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True).stdout
        return sha.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted MLflow params (values cut to MLflow's 6000-character limit)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = str(value)[:6000]
    return flat
