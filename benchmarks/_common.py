"""Shared set-up for the benchmark scripts: config loading and demo inputs (no pipeline run needed)."""

from __future__ import annotations

import atexit
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


def params():
    """conf/base's parameters, typed as a run hands them to nodes (`RunParams`); change a copy with
    `model_copy(update=...)`."""
    from thinking_summarizer.schemas.params import RunParams

    merged = {key: value for file in sorted((ROOT / "conf" / "base").glob("parameters*.yml"))
              for key, value in yaml.safe_load(file.read_text()).items()}
    return RunParams.model_validate(merged)


def updated(section, **changes):
    """A validated copy of a parameter section with `changes`; a mapping is merged into the sub-section it names."""
    def merge(base: dict, new: dict) -> dict:
        return base | {k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                       for k, v in new.items()}

    return type(section).model_validate(merge(section.model_dump(), changes))


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

    conf = params()
    demo = conf.demo_data
    teacher = build_teacher(conf.teacher_labeling, conf.vocabulary, conf.summary_qc, conf.openai_client)
    lookup = category_lookup(conf.vocabulary)
    rows = []
    for i in range(count):
        thinking = make_scene(i, demo).thinking
        outcome = teacher.label_all([(str(i), thinking)])[0]
        if outcome.summary:
            rows.append({"messages": [{"role": "system", "content": instruction}, {"role": "user", "content": thinking},
                                      {"role": "assistant", "content": render(Summary(**outcome.summary), lookup)}]})
    return rows
