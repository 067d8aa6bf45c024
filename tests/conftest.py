"""Shared fixtures: an isolated copy of the Kedro project, and the real data sample when present."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from pydantic import BaseModel

from thinking_summarizer.schemas.params import RunParams
from thinking_summarizer.schemas.params.shared import ClientPolicy, SummaryQC, Vocabulary
from thinking_summarizer.schemas.params.teacher import TeacherLabeling
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration
from thinking_summarizer.schemas.params.tiny import TinyModels, TinyStudent

from .typed_call import to_json

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "intenttrain_emer_sample.json"



def base_parameters() -> dict:
    """conf/base's parameters as Kedro's loader reads them (all files merged)."""
    return {key: value for file in sorted((REPO / "conf/base").glob("parameters*.yml"))
            for key, value in (yaml.safe_load(file.read_text()) or {}).items()}


BASE_PARAMETERS = base_parameters()


def _merged(base: dict, changes: dict) -> dict:
    return base | {k: _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                   for k, v in changes.items()}


def run_params(changes: dict | None = None) -> RunParams:
    """A run's typed parameters: conf/base's with `changes` merged in key by key, as an env or `--params` would."""
    return RunParams.model_validate(_merged(BASE_PARAMETERS, changes or {}))


def at(params: RunParams, dotted: str):
    """The typed section or value at a dotted key: what a node reading `params:<dotted>` is handed."""
    for part in dotted.split("."):
        params = getattr(params, part) if isinstance(params, BaseModel) else params[part]
    return params


def typed(dotted: str, value=None):
    """What a node reading `params:<dotted>` is handed in a run: conf/base's value there (or `value` put in its
    place), validated as the whole run's parameters are, as its typed section (Kedro builds it from the node's
    type hint in a run)."""
    params = copy.deepcopy(BASE_PARAMETERS)
    *parents, last = dotted.split(".")
    holder = params
    for part in parents:
        holder = holder[part]
    if value is not None:
        holder[last] = value
    return at(RunParams.model_validate(params), dotted)


TINY_MODELS = typed("tiny_models")  # the recipes demo_data builds from (tests build smaller ones from them)


def small_student(**sizes) -> TinyStudent:
    """conf's tiny student recipe, smaller, and not pre-trained: for tests that need a student base, not a learner."""
    recipe = TINY_MODELS.student.model_dump()
    recipe["pretrain"]["steps"] = 0
    recipe |= {"vocab_size": 400, "model": {"hidden_size": 64, "layers": 2, "heads": 2, "kv_heads": 2,
                                            "max_positions": 1024, "rope_theta": 1e8, "tie_embeddings": False} | sizes}
    return TinyStudent.model_validate(recipe)

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: a missing model must fail at once, not after retries


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the project's config in a temp dir, which is also the working directory."""
    copy_project(tmp_path)
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


def user_env() -> dict[str, str]:
    """This environment as a user's shell has it: without the MLFLOW_TRACKING_URI that MLflow exports when an
    in-process session points it at some project's store (a child `kedro run` then uses its own project's)."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def kedro_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the `kedro` command line of this environment in the project copy."""
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), *args], cwd=project, capture_output=True, text=True,
                          env=user_env() | {"DO_NOT_TRACK": "true", "COLUMNS": "1000"}, timeout=600)


def documented_kedro_command(fragment: str) -> list[str]:
    """The arguments of the one `.venv/bin/kedro ...` command in README.md or docs/cli.md that contains
    `fragment`, as a shell would split them: a test runs what the docs say, not a copy of it."""
    inline, block = r"`\.venv/bin/kedro ([^`]+)`", r"(?m)^\.venv/bin/kedro (.+)$"
    found = {command for doc in ("README.md", "docs/cli.md") for pattern in (inline, block)
             for command in re.findall(pattern, (REPO / doc).read_text()) if fragment in command}
    assert len(found) == 1, f"{fragment!r} in {len(found)} documented kedro commands: {sorted(found)}"
    return shlex.split(found.pop())


# The default run, shrunk to test size: the same pipelines, nodes and models, less data and fewer steps.
FAST_PARAMS = ",".join([
    "demo_data.n_scenes=48", "data_sampling.n_samples=36",
    "tiny_models.student.pretrain.steps=40", "tiny_models.student.trainer.num_train_epochs=2",
    "evaluation.max_new_tokens=160",
    # a student this briefly trained writes no usable prompts yet: segment from the teacher's summary
    "video_segmentation.summarizer=teacher",
])


def copy_project(target: Path) -> Path:
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(REPO / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf" / "local").mkdir()
    shutil.copytree(REPO / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for folder in (REPO / "data").iterdir():
        (target / "data" / folder.name).mkdir(parents=True)
    for folder in ("notebooks",):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, target / folder)
    return target


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`kedro run` of the whole default chain, at test size, in a fresh copy of the project (once per session)."""
    project = copy_project(tmp_path_factory.mktemp("default_run"))
    result = subprocess.run([str(Path(sys.executable).with_name("kedro")), "run", "--params", FAST_PARAMS],
                            cwd=project, capture_output=True, text=True, env=user_env(), timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project, result


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[Path]:
    """Run inside `path` (a project-like folder): tiny models are only built under a project's `data/`."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


def tiny_model_dir(tmp_path_factory, name: str) -> Path:
    """Where a test's tiny model is built: `data/06_models/<name>` of a fresh project-like folder."""
    return tmp_path_factory.mktemp("project") / "data" / "06_models" / name


@pytest.fixture
def shared_sample() -> Path:
    if not SHARED_SAMPLE.is_file():
        pytest.skip(f"real IntentTrain sample not present at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


def kill_when(code: str, condition, timeout: float = 120) -> None:
    """Run Python `code` in a child process and kill it (SIGKILL, like a crash) once `condition()` holds."""
    # PYTHONPATH emptied: Kedro's bootstrap_project in another test points it at a project copy's src/
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": ""})
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.kill()
    child.wait()


def model(dataset: type, **sections):
    """A catalog model (`io.model_datasets`) as a run hands it to a node: built on first use from `sections`."""
    return dataset(settings={}).bind_sections(**sections).load()


def think(samples: list[dict], config: ThinkingGeneration, client: ClientPolicy, cache_dir: str) -> dict:
    """The generate_thinking node as the pipeline calls it: the thinker built as the catalog's `thinker` entry
    builds it, the result cache the catalog opens (here `cache_dir/cache.sqlite`); the thinker, if in-process, is
    the test's own (`{}`: not demo_data's)."""
    from thinking_summarizer.io.model_datasets import ThinkerDataset
    from thinking_summarizer.io.result_cache import ResponseCache
    from thinking_summarizer.pipelines.thinking_generation.nodes import generate_thinking

    return generate_thinking(samples, ResponseCache(Path(cache_dir) / "cache.sqlite"),
                             model(ThinkerDataset, cfg=config, client=client), {}, config)


def label(records: list[dict], cfg: TeacherLabeling, client: ClientPolicy, vocabulary: Vocabulary, qc: SummaryQC):
    """The label_thinking node as the pipeline calls it, with the teacher the catalog's `teacher` entry builds."""
    from thinking_summarizer.io.model_datasets import TeacherDataset
    from thinking_summarizer.pipelines.teacher_labeling.nodes import label_thinking

    teacher = model(TeacherDataset, cfg=cfg, vocabulary=vocabulary, qc=qc, client=client)
    return label_thinking(records, teacher, cfg, vocabulary, qc)


def build_tiny(tmp_path_factory, role: str) -> Path:
    """A tiny thinker or SAM3 from its recipe in conf, built as demo_data's build_tiny_models builds it, in a
    project-like folder's data/ (`tiny_model_dir`)."""
    from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_models

    model = tiny_model_dir(tmp_path_factory, f"tiny-{role}")
    recipes = TinyModels(**{role: getattr(TINY_MODELS, role)})
    thinking = typed("thinking_generation")
    thinking = thinking.model_copy(update={"transformers": thinking.transformers.model_copy(update={"model": str(model)})})
    with working_dir(model.parents[2]):
        thinker, sam3 = build_tiny_models(recipes, thinking, str(model))
    assert (thinker if role == "thinker" else sam3) == {"model": str(model)}
    return model


def kill_after_calls(node: str, args: list, server, calls: int, tmp_path: Path) -> dict:
    """Run `node(*args)` (a "module:function" path) in a child process, kill it once the stub server
    has answered `calls` requests, and return the server's call counts at that moment."""
    (tmp_path / "child_args.json").write_text(to_json(args))
    kill_when(f"import json, sys\nsys.path.insert(0, {str(REPO)!r})\nfrom tests.typed_call import call\n"
              f"call({node!r}, json.load(open({str(tmp_path / 'child_args.json')!r})))\n",
              lambda: sum(server.calls.values()) >= calls, timeout=60)
    return dict(server.calls)
