"""The student learns what to write (issue 19): the learning benchmark at a reduced size, trained with the default
recipe, against the same student untrained. About 6 minutes on 2 cores (6 min 9 s on 2026-12-06), so `make test-learning` runs it and
`make test` leaves it out."""

import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.learning, pytest.mark.timeout(900)]


def _table(path) -> list[dict[str, str]]:
    lines = [line.strip("| ").split(" | ") for line in path.read_text().splitlines()]
    return [dict(zip(lines[0], row)) for row in lines[2:]]


def test_trained_student_names_the_scenes_objects_that_the_untrained_one_does_not(tmp_path):
    out = tmp_path / "learning.md"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "student_learning.py"), "--examples", "256",
                    "--epochs", "24", "--every", "24", "--val", "32", "--decoding", "grammar", "--out", str(out)],
                   check=True, timeout=900)
    rows = _table(out)
    untrained, trained = rows[0], rows[-1]
    assert (untrained["step"], trained["step"]) == ("0", "384")
    # measured at 384 steps on 64 val scenes: object F1 vs truth 0.52, primary 0.51, format 1.0; untrained 0
    assert float(untrained["object_f1/truth"]) < 0.05
    assert float(trained["object_f1/truth"]) > float(untrained["object_f1/truth"]) + 0.3
    assert float(trained["primary_f1/truth"]) > 0.3
    assert float(trained["format_valid"]) >= 0.95
