"""Atomic saves: a run killed while a dataset is being written leaves the previous newest version loadable."""

import json
import subprocess
import sys
import time

import pytest
from kedro.io import DatasetError, Version

from thinking_summarizer.io.datasets import JSONDataset

KILL_MIDWAY = """
import json, os, signal, sys
import kedro_datasets.json.json_dataset as module
from kedro.io import Version
from {module} import JSONDataset

def half_then_die(data, stream, **kwargs):
    text = json.dumps(data)
    stream.write(text[: len(text) // 2])
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)

module.json.dump = half_then_die
JSONDataset(filepath=sys.argv[1], version=Version(None, None)).save({{"version": 2, "rows": list(range(1000))}})
"""


def save_and_kill(path, module: str) -> None:
    child = subprocess.run([sys.executable, "-c", KILL_MIDWAY.format(module=module), str(path)])
    assert child.returncode == -9  # killed in the middle of writing


def test_a_save_killed_midway_leaves_the_previous_version(tmp_path):
    path = tmp_path / "labels.json"
    JSONDataset(filepath=str(path), version=Version(None, None)).save({"version": 1})
    time.sleep(0.01)  # a later version timestamp
    save_and_kill(path, "thinking_summarizer.io.datasets")
    assert JSONDataset(filepath=str(path), version=Version(None, None)).load() == {"version": 1}
    assert len(list(path.iterdir())) == 2  # the killed save's folder holds only its partial file


def test_the_stock_dataset_would_have_left_a_truncated_newest_version(tmp_path):
    """The same kill against kedro-datasets' own JSONDataset: why the project's datasets exist."""
    path = tmp_path / "labels.json"
    JSONDataset(filepath=str(path), version=Version(None, None)).save({"version": 1})
    time.sleep(0.01)
    save_and_kill(path, "kedro_datasets.json")
    with pytest.raises(DatasetError, match="Expecting|Unterminated|JSONDecodeError|delimiter"):
        JSONDataset(filepath=str(path), version=Version(None, None)).load()


def test_the_next_save_sweeps_what_a_killed_or_failed_save_left(tmp_path):
    path = tmp_path / "labels.json"
    JSONDataset(filepath=str(path), version=Version(None, None)).save({"version": 1})
    time.sleep(0.01)
    save_and_kill(path, "thinking_summarizer.io.datasets")
    assert len(list(path.glob("*/.labels.json.partial"))) == 1
    time.sleep(0.01)
    with pytest.raises(DatasetError):  # a write that fails (not JSON) leaves no partial of its own
        JSONDataset(filepath=str(path), version=Version(None, None)).save({"bad": object()})
    time.sleep(0.01)
    JSONDataset(filepath=str(path), version=Version(None, None)).save({"version": 3})
    assert not list(path.glob("*/.*.partial"))
    assert sorted(json.loads(p.read_text())["version"] for p in path.glob("*/labels.json")) == [1, 3]
    assert all(any(folder.iterdir()) for folder in path.iterdir())  # no empty version folder left behind
