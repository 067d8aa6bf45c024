"""The synthetic demo corpus the default run makes for itself, its ground truth keyed for the pipelines, and the
tiny random models that stand in for the real ones on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

from thinking_summarizer.demo.corpus import write_corpus
from thinking_summarizer.schemas import Row, video_id
from thinking_summarizer.schemas.params.data import DataSampling, DemoData
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration
from thinking_summarizer.schemas.params.tiny import TinyModels
from thinking_summarizer.tiny_models import build_sam3, build_student, build_thinker


def prepare_demo_corpus(demo: DemoData, sampling: DataSampling) -> Row:
    """Write the synthetic demo corpus, unless an identical one is on disk or the run names its own sources."""
    if sampling.sources:
        return {"used": False}
    return write_corpus(demo) | {"used": True}


def ground_truth_by_video(demo_manifest: Row, samples: list[Row]) -> dict[str, Row]:
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


def build_tiny_models(recipes: TinyModels, thinking: ThinkingGeneration, sam3: str) -> tuple[Row, Row]:
    """The tiny thinker and SAM3, each at the folder its section names, where `tiny_models` has a recipe for it
    (a real model's name, or a folder this project did not build, is left alone): `{"model": folder}` per role
    built, `{}` otherwise."""
    thinker = thinking.transformers.model
    thinker_built = recipes.thinker is not None and build_thinker(thinker, recipes.thinker, thinking.prompt)
    sam3_built = recipes.sam3 is not None and build_sam3(sam3, recipes.sam3)
    return ({"model": thinker} if thinker_built else {}), ({"model": sam3} if sam3_built else {})


def build_tiny_student(train_chat: Dataset, recipes: TinyModels, base_model: str) -> Row:
    """The tiny student base at `lora_training.base_model` when `tiny_models.student` has a recipe, with the
    trainer knobs it changes; {} when the base is a real model."""
    recipe = recipes.student
    if recipe is None or not build_student(base_model, recipe, list(train_chat["messages"])):
        return {}
    return {"model": base_model, "recipe": recipe.model_dump(mode="json", exclude_none=True)}
