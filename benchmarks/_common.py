"""Shared set-up for the benchmark scripts: config loading and demo inputs (no pipeline run needed)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("DO_NOT_TRACK", "true")


def params(name: str) -> dict[str, Any]:
    """A fresh copy of `conf/base/parameters_<name>.yml` (or `parameters.yml` for name "")."""
    file = ROOT / "conf" / "base" / (f"parameters_{name}.yml" if name else "parameters.yml")
    return json.loads(json.dumps(yaml.safe_load(file.read_text())))


def scratch() -> Path:
    """A temporary project folder, made the working directory and removed at exit, whose `data/` holds the
    benchmark's models, stores and files (tiny models are only ever built under a project's `data/`)."""
    root = Path(tempfile.mkdtemp(prefix="thinking-summarizer-bench-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # removed when the benchmark exits
    os.chdir(root)
    (root / "data").mkdir()
    return root / "data"


def chat_examples(count: int, instruction: str) -> list[dict[str, Any]]:
    """Chat-form training examples from demo scenes labelled by the extractive teacher."""
    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.schemas import Summary
    from thinking_summarizer.text.summary_format import category_lookup, render
    from thinking_summarizer.teachers import build_teacher

    demo, shared = params("demo_data")["demo_data"], params("")
    teacher = build_teacher(params("teacher_labeling")["teacher_labeling"], shared["vocabulary"], shared["summary_qc"])
    lookup = category_lookup(shared["vocabulary"])
    rows = []
    for i in range(count):
        thinking = make_scene(i, demo).thinking
        outcome = teacher.label_all([(str(i), thinking)])[0]
        if outcome.summary:
            rows.append({"messages": [{"role": "system", "content": instruction}, {"role": "user", "content": thinking},
                                      {"role": "assistant", "content": render(Summary(**outcome.summary), lookup)}]})
    return rows
