"""The GPU benchmark suite stays runnable: its tiny-shape smoke mode runs every part of it here, through the
project's own code, without importing kedro or mlflow (a bare GPU box has neither)."""

import json
import subprocess
import sys

from .conftest import REPO

RUN = """
import json, runpy, sys
sys.argv = ["gpu_suite.py", "--smoke", "--out", sys.argv[1]]
runpy.run_path({suite!r}, run_name="__main__")
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & {{"kedro", "mlflow", "kedro_datasets"}})))
"""


def test_the_gpu_suite_runs_every_part_in_smoke_mode_without_kedro_or_mlflow(tmp_path):
    out = tmp_path / "rows.json"
    child = subprocess.run([sys.executable, "-c", RUN.format(suite=str(REPO / "benchmarks" / "gpu_suite.py")), str(out)],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert child.returncode == 0, child.stderr[-3000:]
    assert json.loads(child.stdout.strip().splitlines()[-1]) == []  # neither was imported
    rows = json.loads(out.read_text())["rows"]
    targets = {r["what"] for r in rows if r["target"]}
    assert {"student best summaries/s", "LoRA 3 epochs x 2,240 samples", "SAM3 state 4x / 1x length",
            "thinker 3,000 samples"} <= targets
    assert "| what | figure | target |" in child.stdout
    assert all(r["figure"] for r in rows)
