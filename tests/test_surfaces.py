"""What users touch besides `kedro run`: kedro-viz (API and a headless Chromium screenshot), the notebooks,
and the MLflow UI on the project's store."""

import json
import re
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import mlflow
import nbformat
import numpy as np
import pytest
import yaml
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient

from .conftest import REPO, user_env

LAYERS = ["raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting", "tracking"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """A free port below 49151: kedro-viz refuses ports in the ephemeral range the OS would pick."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 49000)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port


def serve(command: list[str], cwd: Path, url: str, timeout: float = 120):
    """Start a server in its own process group and wait until `url` answers; returns the process."""
    log = cwd / f"{Path(command[0]).name}-{command[1]}.log"
    process = subprocess.Popen(command, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "DO_NOT_TRACK": "true"})
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop(process)
    raise TimeoutError(f"{command[:3]} did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the servers spawn workers: end the whole group
    except ProcessLookupError:
        pass
    process.wait()


@pytest.fixture(scope="module")
def viz(default_run):
    project, _ = default_run
    port = free_port()
    # what `make viz` starts
    process = serve([sys.executable, "-m", "thinking_summarizer.runtime.viz", "--host", "127.0.0.1", "--port",
                     str(port)], project, f"http://127.0.0.1:{port}/api/main")
    yield project, f"http://127.0.0.1:{port}"
    stop(process)


def test_viz_api_shows_every_pipeline_dataset_and_layer(viz):
    project, url = viz
    graph = json.load(urllib.request.urlopen(f"{url}/api/main"))
    bootstrap_project(project)
    registered = dict(pipelines)
    assert {p["id"] for p in graph["pipelines"]} == set(registered)
    shown = {n["name"]: n for n in graph["nodes"] if n["type"] == "data"}
    datasets = {d for p in registered.values() for d in p.datasets() if not d.startswith("params:")}
    assert datasets - {"parameters"} <= set(shown)
    assert graph["layers"] == LAYERS
    catalog = yaml.safe_load((project / "conf/base/catalog.yml").read_text())
    for name, entry in catalog.items():
        layer = entry.get("metadata", {}).get("kedro-viz", {}).get("layer")
        if layer and "{" not in name:
            assert shown[name]["layer"] == layer, name
    assert {shown[f"sft_{split}_{form}"]["layer"] for split in ("train", "val") for form in ("chat", "instruction")} \
        == {"model_input"}
    tasks = {n["name"] for n in graph["nodes"] if n["type"] == "task"}
    assert {n.name for p in registered.values() for n in p.nodes} == tasks


def test_viz_refuses_a_foreign_host_header(viz):
    """DNS rebinding: a page on another site that resolves its name to 127.0.0.1 must get nothing."""
    _, url = viz
    foreign = urllib.request.Request(f"{url}/api/main", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=10)
    assert refused.value.code == 400
    own = urllib.request.Request(f"{url}/api/main", headers={"Host": url.removeprefix("http://")})
    assert urllib.request.urlopen(own, timeout=10).status == 200


@pytest.mark.skipif(not CHROMIUM, reason="Debian chromium is not installed (`make test` installs it as root)")
def test_viz_renders_the_graph_in_headless_chromium(viz, tmp_path):
    _, url = viz
    shot = tmp_path / "viz.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,1000",
                    "--virtual-time-budget=20000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (1000, 1600)
    graph_area = image[60:760, 500:1300].astype(int)  # right of the sidebar, above the minimap
    background = np.median(graph_area.reshape(-1, 3), axis=0)
    drawn = (np.abs(graph_area - background).sum(axis=2) > 60).mean()
    assert drawn > 0.01, f"only {drawn:.2%} of the graph area differs from the background: a blank canvas"


@pytest.mark.parametrize("notebook", sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")))
def test_notebook_runs_top_to_bottom_on_the_default_run(default_run, notebook):
    project, _ = default_run
    book = nbformat.read(project / "notebooks" / notebook, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute(env=user_env())
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    plots = any("plt." in cell.source or ".plot(" in cell.source for cell in book.cells if cell.cell_type == "code")
    assert bool(images) == plots, f"{len(images)} figures rendered for {'a plotting' if plots else 'no'} notebook"
    printed = "".join(str(o.get("text", "")) + json.dumps(o.get("data", {})) for o in outputs)
    assert "Loading data from" not in printed  # catalog loads are quiet
    if notebook.startswith("03"):
        assert "champion" in printed  # the versions table shows the aliases the run set


def test_mlflow_ui_serves_the_project_store(default_run):
    project, _ = default_run
    port = free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    # the README's `make mlflow-ui`, on the test run's store
    process = serve([mlflow_cli, "ui", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}",
                     "--host", "127.0.0.1", "--port", str(port)], project, f"http://127.0.0.1:{port}/health")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/search",
                                         headers={"Content-Type": "application/json"})
        models = json.load(urllib.request.urlopen(request))["registered_models"]
        assert [m["name"] for m in models] == ["thinking-summarizer-lora"]
        aliases = {a["alias"] for a in models[0]["aliases"]}
        assert {"candidate", "champion"} <= aliases
    finally:
        stop(process)


def test_the_documented_serve_and_curl_lines_answer_with_the_champions_summary(default_run, tmp_path):
    """docs/cli.md's bash block as written (the project's paths and a free port filled in): `mlflow models serve`
    of the champion, then the curl line, whose prediction is the champion's greedy summary."""
    from thinking_summarizer.student import load_student

    project, _ = default_run
    block = re.search(r"```bash\n(.*?)```", (REPO / "docs/cli.md").read_text(), re.S).group(1)
    port = free_port()
    block = (block.replace("/abs/path/to/thinking-summarizer/.venv/bin", str(Path(sys.executable).parent))
             .replace("/abs/path/to/thinking-summarizer/mlflow.db", str(project / "mlflow.db"))
             .replace("-p 5001", f"-p {port}").replace("127.0.0.1:5001", f"127.0.0.1:{port}"))
    export, serve_line, curl_line = (line for line in block.replace("\\\n", "").splitlines()
                                     if line.strip() and not line.startswith("#"))
    server = serve(["bash", "-c", f"{export} && {serve_line}"], tmp_path, f"http://127.0.0.1:{port}/ping",
                   timeout=300)
    try:
        answer = subprocess.run(["bash", "-c", curl_line], capture_output=True, text=True, timeout=300)
    finally:
        stop(server)
    predictions = json.loads(answer.stdout)["predictions"]
    thinking = json.loads(re.search(r"-d '(.*)'", curl_line).group(1))["inputs"][0]
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    champion = load_student("models:/thinking-summarizer-lora@champion")  # served unmerged, as the pyfunc loads it
    assert predictions == [champion.summarize([thinking], 8, 384).texts[0]]
