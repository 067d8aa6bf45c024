"""Shared fixtures: an isolated copy of the Kedro project, and the real data sample when present."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "intenttrain_emer_sample.json"

os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the project's config in a temp dir, which is also the working directory."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_session(project: Path, pipelines: list[str], params: dict | None = None) -> dict:
    """Run pipelines in-process with runtime params; returns the session's run result."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params or {}) as session:
        return session.run(pipeline_names=pipelines)


def load_latest(project: Path, name: str, params: dict | None = None):
    """Load a catalog entry (latest version) as a notebook would."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params or {}) as session:
        return session.load_context().catalog.load(name)


def kedro_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the `kedro` command line of this environment in the project copy."""
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "DO_NOT_TRACK": "true"}, timeout=600)


@pytest.fixture
def shared_sample() -> Path:
    if not SHARED_SAMPLE.is_file():
        pytest.skip(f"real IntentTrain sample not present at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


def kill_after_calls(node: str, args: list, server, calls: int, tmp_path: Path) -> dict:
    """Run `node(*args)` (a "module:function" path) in a child process, kill it once the stub server
    has answered `calls` requests, and return the server's call counts at that moment."""
    module, function = node.split(":")
    (tmp_path / "child_args.json").write_text(json.dumps(args))
    code = (f"import json, sys\nfrom {module} import {function}\n"
            f"{function}(*json.load(open(sys.argv[1])))\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "child_args.json")], env=os.environ.copy())
    deadline = time.time() + 60
    while sum(server.calls.values()) < calls and time.time() < deadline:
        time.sleep(0.05)
    child.kill()
    child.wait()
    return dict(server.calls)
