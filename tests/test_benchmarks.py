"""Every benchmark runs at its smallest size (the GPU suite has its own test) and leaves nothing behind: each is
started in a process group of its own, which must be empty when it exits, with a TMPDIR that must be empty too."""

import os
import signal
import subprocess
import sys

import pytest

from .conftest import REPO

SMALLEST = {
    "teacher_throughput": ["--samples", "8", "--serial-samples", "4", "--latency", "0.01"],
    "student_generation_throughput": ["--samples", "4", "--new-tokens", "8", "--batch-sizes", "1,2"],
    "segmentation_throughput": ["--size", "80", "--frames", "4", "--prompts", "woman in red coat"],
    "thinking_generation_throughput": ["--samples", "2", "--new-tokens", "8", "--batch-sizes", "1"],
    "lora_training_throughput": ["--samples", "16", "--epochs", "1"],
    "student_learning": ["--examples", "16", "--epochs", "1", "--every", "1", "--val", "4", "--max-new-tokens", "16",
                         "--set", "pretrain.steps=2", "--out", "{tmp}/learning"],
}
# what each prints or writes when it has measured something
FIGURE = {
    "teacher_throughput": "ratio:", "student_generation_throughput": "summaries/s",
    "segmentation_throughput": "session state at 4x / 1x", "thinking_generation_throughput": "samples/s",
    "lora_training_throughput": "tokens/s", "student_learning": "Table:",
}


def test_every_benchmark_is_listed():
    assert {p.stem for p in (REPO / "benchmarks").glob("*.py")} - {"_common", "gpu_suite"} == set(SMALLEST)


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_runs_at_its_smallest_size_and_stops_what_it_starts(name, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in SMALLEST[name]]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    child = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env=os.environ | {"TMPDIR": str(scratch)})
    try:
        output, _ = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 0, output[-3000:]
    assert FIGURE[name] in output, output[-2000:]
    try:  # anything it started (a stub server, a worker) is still in its process group
        os.killpg(child.pid, 0)
        os.killpg(child.pid, signal.SIGKILL)
        pytest.fail(f"{name} left processes running")
    except ProcessLookupError:
        pass
    # its scratch folders are gone too (torch keeps its own kernel cache there)
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
