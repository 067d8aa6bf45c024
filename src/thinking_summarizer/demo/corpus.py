"""Write the demo corpus in the same source schemas the real datasets use."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from thinking_summarizer.demo.scenes import Scene, make_scene
from thinking_summarizer.demo.video import render, voice, write_video
from thinking_summarizer.io.hashing import content_hash
from thinking_summarizer.schemas import DemoScene, Row, SceneObject
from thinking_summarizer.schemas.params.data import DemoData, VideoShape

log = logging.getLogger(__name__)
SOURCE_FILES = {"intentbench": "intentbench.json", "daily_omni": "daily_omni.jsonl", "intenttrain": "intenttrain.json"}


def _source_record(source: str, scene: Scene) -> Row:
    media = f"{scene.scene_id}.mp4"
    record = {
        "problem": scene.question,
        "problem_type": "emer_ov_mc" if source == "intenttrain" else "multiple choice",
        "options": scene.options,
        "solution": scene.solution,
        "answer": scene.answer_letter,
        "data_type": "video",
    }
    if source == "intenttrain":
        record |= {"video": media, "path": media, "clean_list": [scene.emotion.capitalize()]}
    else:
        record["video" if source == "intentbench" else "path"] = media
    return record


def _ground_truth(scene: Scene, video: VideoShape) -> DemoScene:
    return DemoScene(
        scene_id=scene.scene_id, video=f"videos/{scene.scene_id}.mp4", masks=f"masks/{scene.scene_id}.npz",
        objects=[
            SceneObject(object_id=i + 1, category=o.category, description=o.description, colour=o.colour,
                        priority=o.priority, sam3_prompt=o.prompt)
            for i, o in enumerate(scene.objects)
        ],
        distractors=scene.distractors, emotion=scene.emotion, num_frames=video.num_frames,
        fps=video.fps, width=video.width, height=video.height,
    )


def _assign_sources(cfg: DemoData) -> list[str]:
    shares = cfg.source_shares
    counts = {name: int(round(share * cfg.n_scenes)) for name, share in shares.items()}
    counts[next(iter(shares))] += cfg.n_scenes - sum(counts.values())
    return [name for name, n in counts.items() for _ in range(n)]


def write_corpus(cfg: DemoData) -> Row:
    """Write videos, masks, ground truth and the three source files under `cfg.root`.

    Idempotent: a corpus already written with the same config is kept as is.
    """
    root = Path(cfg.root)
    manifest_path = root / "manifest.json"
    digest = content_hash(cfg)
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_hash") == digest:
            log.info("Demo corpus at %s is up to date (%d scenes)", root, manifest["n_scenes"])
            return manifest
    for sub in ("videos", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    video = cfg.video
    sources: dict[str, list[Row]] = {name: [] for name in SOURCE_FILES}
    benchmark_scenes: list[Scene] = []
    truths = []
    for index, source in enumerate(tqdm(_assign_sources(cfg), desc="demo scenes", unit="scene")):
        scene = make_scene(index, cfg)
        frames, masks = render(scene, cfg.colours, video.width, video.height, video.num_frames)
        track = voice(scene, cfg.audio, video.num_frames / video.fps)
        write_video(str(root / "videos" / f"{scene.scene_id}.mp4"), frames, video.fps, track,
                    cfg.audio.sampling_rate)
        np.savez_compressed(root / "masks" / f"{scene.scene_id}.npz", masks=masks)
        sources[source].append(_source_record(source, scene))
        if source == "intentbench":
            benchmark_scenes.append(scene)
        truths.append(_ground_truth(scene, video).model_dump())
    rng = random.Random(cfg.seed)
    n_dupes = int(cfg.duplicate_video_share * cfg.n_scenes)
    for scene in rng.sample(benchmark_scenes, min(n_dupes, len(benchmark_scenes))):
        sources["intenttrain"].append(_source_record("intenttrain", scene))
    for name, filename in SOURCE_FILES.items():
        if filename.endswith(".jsonl"):
            text = "".join(json.dumps(r) + "\n" for r in sources[name])
        else:
            text = json.dumps(sources[name], indent=1)
        (root / filename).write_text(text)
    (root / "ground_truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths))
    manifest = {
        "config_hash": digest, "seed": cfg.seed, "n_scenes": cfg.n_scenes,
        "records": {name: len(records) for name, records in sources.items()},
        "duplicate_videos": n_dupes, "root": str(root),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    log.info("Wrote demo corpus: %d scenes to %s (%s)", cfg.n_scenes, root, manifest["records"])
    return manifest
