"""The synthetic demo corpus the default run makes for itself, and its ground truth keyed for the pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thinking_summarizer.demo.corpus import write_corpus
from thinking_summarizer.schemas import video_id


def prepare_demo_corpus(demo: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
    """Write the synthetic demo corpus, unless an identical one is on disk or the run names its own sources."""
    if sampling.get("sources"):
        return {"used": False}
    return write_corpus(demo) | {"used": True}


def ground_truth_by_video(demo_manifest: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The demo's ground truth for the videos the run sampled, keyed by their `video_id` (objects, and the masks
    file); empty when the run samples a user's sources, which have none. It needs the samples, so a run that
    fails before sampling leaves the last run's ground truth as it was."""
    if not demo_manifest.get("used"):
        return {}
    root = Path(demo_manifest["root"])
    scenes = [json.loads(line) for line in (root / "ground_truth.jsonl").read_text().splitlines() if line.strip()]
    sampled = {s["video_id"] for s in samples}
    truth = {video_id(Path(scene["video"]).name): {"scene_id": scene["scene_id"], "objects": scene["objects"],
                                                    "masks": str(root / scene["masks"])} for scene in scenes}
    return {key: value for key, value in truth.items() if key in sampled}
