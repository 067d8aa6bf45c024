"""Video + question -> thinking -> summary -> SAM3 prompts -> tracked masks -> masked MP4 and statistics."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from statistics import mean
from typing import Callable

import numpy as np

from thinking_summarizer.generators.cached import generate_cached
from thinking_summarizer.io.model_datasets import Thinker
from thinking_summarizer.io.result_cache import ResponseCache
from thinking_summarizer.io.media import MediaError, VideoWriter, copy_audio
from thinking_summarizer.schemas import Row, Summary, TrackingRecord
from thinking_summarizer.schemas.params.segmentation import Encoder, UngroundedPrompts, VideoSegmentation
from thinking_summarizer.schemas.params.shared import Vocabulary
from thinking_summarizer.segmentation.masks import MaskWriter, OverlayStyle, overlay, score_against_truth
from thinking_summarizer.segmentation.sam3 import Sam3Segmenter, TrackResult
from thinking_summarizer.student.loader import StudentLoader
from thinking_summarizer.teachers import Teacher
from thinking_summarizer.text.metrics import prompt_grounding
from thinking_summarizer.text.summary_format import category_lookup, parse_lenient, primary_first, render
from thinking_summarizer.text.tagged_output import extract
from thinking_summarizer.tiny_models import announce_stand_in

log = logging.getLogger(__name__)


def plan_samples(val_examples: list[Row], samples: list[Row], cfg: VideoSegmentation) -> list[Row]:
    """The videos to segment: those of a demo config file (`samples: [{video_path, question, answer_options}]`),
    or the first val samples."""
    if cfg.demo_config:
        path = Path(cfg.demo_config)
        entries = json.loads(path.read_text())["samples"]
        plan = []
        for i, entry in enumerate(entries):
            video = Path(entry["video_path"])
            video = video if video.is_absolute() else path.parent / video
            options = entry.get("answer_options") or []
            key = hashlib.sha1(f"{video}\n{entry['question']}".encode()).hexdigest()[:8]
            plan.append({"sample_id": f"demo-{i:03d}-{key}", "video_id": video.stem, "video_path": str(video),
                         "question": entry["question"], "options": options,
                         "problem_type": "multiple choice" if options else "free-form", "answer": None,
                         "source": "demo_config"})
        return plan
    by_id = {s["sample_id"]: s for s in samples}
    return [by_id[e["sample_id"]] for e in val_examples[: cfg.from_val_split]]


def description_prompt(description: str, rule: UngroundedPrompts) -> str:
    """A SAM3 prompt made of the description's own words: without its leading article, cut before its first
    position phrase ("a girl in a red sweater on the right" -> "girl in a red sweater")."""
    words = description.strip().rstrip(".").split()
    if words and words[0].lower() in rule.articles:
        words = words[1:]
    text = " ".join(words)
    cuts = [i for phrase in rule.cut_at if (i := text.lower().find(f" {phrase}")) > 0]
    return text[: min(cuts)] if cuts else text


def _prompts(text: str, limit: int, lookup: dict[str, str], rule: UngroundedPrompts | None) -> tuple[list[str], int]:
    """SAM3 prompts of a summary, those of primary objects first, without repeats; with `rule`, a prompt that says
    what its own description does not (`prompt_grounding`) is replaced by the description's words. Also how many
    were replaced."""
    objects = parse_lenient(text, lookup)["objects"]
    ungrounded = [rule is not None and prompt_grounding([o]) == 0 for o in objects]
    chosen = [description_prompt(o["description"], rule) if bad else o["prompt"] for o, bad in zip(objects, ungrounded)]
    ordered = primary_first([(o["priority"], p) for o, p in zip(objects, chosen)])
    return list(dict.fromkeys(p for p in ordered if p.strip()))[:limit], sum(ungrounded)


def think_and_summarize(
    plan: list[Row], cache: ResponseCache, thinker: Thinker, tiny_thinker: Row, teacher: Teacher,
    students: StudentLoader, registered: Row, cfg: VideoSegmentation, vocabulary: Vocabulary,
) -> list[Row]:
    """The `thinker`'s thinking for each video and question, then the summary (by the student or the teacher, as
    `cfg.summarizer` says) and its SAM3 prompts."""
    if thinker.settings.backend == "transformers":
        announce_stand_in(tiny_thinker, thinker.settings.transformers.model, "thinker")
    started = time.perf_counter()
    # thinking_generation's own cache: a video and question already thought about is not thought about again
    generations = {g["sample_id"]: g for g in generate_cached(plan, cache, thinker, "segmentation thinking")}
    rows = []
    for sample in plan:
        generation = generations[sample["sample_id"]]
        parts = extract(generation["raw_text"])
        row = {k: sample[k] for k in ("sample_id", "video_id", "video_path", "question", "options")}
        if generation["error"] or not parts.thinking:
            rows.append(row | {"error": generation["error"] or
                               f"no thinking in the generation ({'; '.join(parts.problems)})"})
        else:
            rows.append(row | {"thinking": parts.thinking, "answer": parts.answer, "error": ""})
    thinking_seconds = time.perf_counter() - started
    ready = [r for r in rows if not r["error"]]
    lookup = category_lookup(vocabulary) if ready else {}
    started = time.perf_counter()
    texts: list[str] = []
    if ready and cfg.summarizer == "student":
        student = students.load(cfg.student or registered["model_uri"])
        texts = student.summarize([r["thinking"] for r in ready], cfg.batch_size, cfg.max_new_tokens).texts
    elif ready:
        outcomes = teacher.label_all([(r["sample_id"], r["thinking"]) for r in ready])
        texts = [_render_or_empty(o.summary, lookup) for o in outcomes]
    for row, text in zip(ready, texts):
        prompts, replaced = _prompts(text, cfg.max_prompts, lookup, cfg.ungrounded_prompts)
        row |= {"summary": text, "prompts": prompts, "prompts_from_description": replaced}
        if not row["prompts"]:
            row["error"] = "the summary names no SAM3 prompt"
    summary_seconds = time.perf_counter() - started
    for row in rows:
        row["timings"] = {"thinking_s": round(thinking_seconds / max(1, len(rows)), 3),
                          "summary_s": round(summary_seconds / max(1, len(ready)), 3)}
    log.info("Planned %d videos: %d with prompts; %d prompts said what their description does not and were "
             "replaced by its words", len(rows), sum(not r["error"] for r in rows),
             sum(r.get("prompts_from_description", 0) for r in rows))
    return rows


def _render_or_empty(summary: Row | None, lookup: dict[str, str]) -> str:
    return render(Summary(**summary), lookup) if summary else ""


def _segment_one(segmenter: Sam3Segmenter, row: Row, staging: Path, style: OverlayStyle, encoder: Encoder) -> Row:
    video_file, masks_file = staging / f"{row['sample_id']}.mp4", staging / f"{row['sample_id']}.jsonl.gz"
    writer: VideoWriter | None = None
    masks_out = MaskWriter(masks_file)
    labels: dict[int, str] = {}
    encode_seconds = 0.0

    def on_frame(index: int, frame: np.ndarray, masks: dict[int, np.ndarray], so_far: TrackResult) -> None:
        nonlocal writer, encode_seconds
        started = time.perf_counter()
        masks_out.write(index, frame.shape[:2], masks)
        labels.update({i: so_far.prompt_of.get(i, "") for i in masks})
        shown = overlay(frame, masks, labels, style)
        if writer is None:
            writer = VideoWriter(video_file, so_far.fps, shown.shape[1], shown.shape[0], crf=encoder.crf,
                                 preset=encoder.preset)
        writer.write(shown)
        encode_seconds += time.perf_counter() - started

    row = row | {"prompts": list(dict.fromkeys(segmenter.fit_prompt(p) for p in row["prompts"]))}
    try:
        result = segmenter.track(row["video_path"], row["prompts"], on_frame)
    finally:
        masks_out.close()
        if writer is not None:
            writer.close()
    with_audio = copy_audio(row["video_path"], video_file)  # the masked video keeps the source's sound
    found = {p: sorted(i for i, q in result.prompt_of.items() if q == p) for p in row["prompts"]}
    return {
        "video_file": str(video_file), "masks_file": str(masks_file), "frames_tracked": result.frames,
        "fps": result.fps, "size": [result.width, result.height], "objects_per_prompt": found, "audio": with_audio,
        "prompts": row["prompts"],  # as SAM3 took them (`fit_prompt`)
        "objects": len(result.prompt_of), "prompts_from_description": row.get("prompts_from_description", 0),
        "tracking_success_rate": round(sum(bool(v) for v in found.values()) / len(found), 4) if found else 0.0,
        "frame_coverage": round(result.frames_with_any / result.frames, 4) if result.frames else 0.0,
        "frames_per_object": {str(k): v for k, v in result.frames_with.items()},
        "timings": row["timings"] | {"propagation_s": round(result.seconds_model, 3),
                                     "overlay_encode_s": round(encode_seconds, 3),
                                     "propagation_fps": round(result.frames / max(result.seconds_model, 1e-9), 2),
                                     "overlay_encode_fps": round(result.frames / max(encode_seconds, 1e-9), 2)},
        "peak_state_mb": round(max(result.state_bytes, default=0) / 2**20, 3),
    }


def segment_videos(
    rows: list[Row], segmenter: Sam3Segmenter, tiny_sam3: Row, cfg: VideoSegmentation, ground_truth: dict[str, Row],
) -> tuple[dict[str, Row], dict[str, str], dict[str, str]]:
    """Track each sample's prompts with SAM3 (`segmenter`); a broken video fails its own sample only. Returns the
    JSON result per sample and the finished masked videos and mask files (moved into the catalog's folders on
    save)."""
    announce_stand_in(tiny_sam3, cfg.sam3.model, "SAM3")
    staging = Path(cfg.staging_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    results, videos, masks = {}, {}, {}
    for row in rows:
        result = {k: row.get(k) for k in ("sample_id", "video_path", "question", "thinking", "answer", "summary",
                                          "prompts", "timings")} | {"sam3": segmenter.model_id}
        if row["error"]:
            log.warning("Sample %s (%s) not segmented: %s", row["sample_id"], row["video_path"], row["error"])
            results[row["sample_id"]] = result | {"status": "error", "error": row["error"]}
            continue
        try:
            out = _segment_one(segmenter, row, staging, OverlayStyle(**cfg.render.model_dump()), cfg.encoder)
        except MediaError as err:
            log.warning("Sample %s: %s", row["sample_id"], err)
            results[row["sample_id"]] = result | {"status": "error", "error": f"unreadable_video: {err}"}
            continue
        scene = ground_truth.get(row["video_id"])
        if scene is not None:
            labels = np.load(scene["masks"])["masks"]
            out["ground_truth"] = score_against_truth(out["masks_file"], labels, [o["object_id"] for o in scene["objects"]])
        videos[row["sample_id"]], masks[row["sample_id"]] = out.pop("video_file"), out.pop("masks_file")
        results[row["sample_id"]] = result | out | {"status": "ok"}
        log.info("Segmented %s: %d frames, %d objects, coverage %.2f", row["sample_id"], out["frames_tracked"],
                 out["objects"], out["frame_coverage"])
    return results, videos, masks


def segmentation_statistics(
    partitions: dict[str, Callable[[], Row]], plan: list[Row],
) -> tuple[Row, TrackingRecord]:
    """Objects per video, tracking success, frame coverage, speed and (demo) agreement with ground truth, over
    this run's samples (`plan`; earlier runs' results stay on disk); and their tracking record (the numbers, the
    SAM3 checkpoint, every sample's result)."""
    results = {row["sample_id"]: partitions[row["sample_id"]]() for row in sorted(plan, key=lambda r: r["sample_id"])}
    ok = [r for r in results.values() if r["status"] == "ok"]
    scored = [r["ground_truth"] for r in ok if "ground_truth" in r]

    def avg(values: list[float]) -> float | None:
        return round(float(mean(values)), 4) if values else None

    stats = {
        "samples": len(results), "segmented": len(ok),
        "errors": {sid: r["error"] for sid, r in results.items() if r["status"] != "ok"},
        "objects_per_video": avg([r["objects"] for r in ok]),
        "prompts_from_description": sum(r.get("prompts_from_description", 0) for r in ok),
        "tracking_success_rate": avg([r["tracking_success_rate"] for r in ok]),
        "frame_coverage": avg([r["frame_coverage"] for r in ok]),
        "propagation_fps": avg([r["timings"]["propagation_fps"] for r in ok]),
        "overlay_encode_fps": avg([r["timings"]["overlay_encode_fps"] for r in ok]),
        "peak_state_mb": max((r["peak_state_mb"] for r in ok), default=None),
        "truth_mean_iou": avg([s["mean_iou"] for s in scored]),
        "truth_mean_j_and_f": avg([s["mean_j_and_f"] for s in scored]),
        "truth_frame_iou": avg([v for s in scored for v in s["frame_iou"]]),
    }
    stats["summary"] = (f"video_segmentation: {len(ok)} of {len(results)} videos, {stats['objects_per_video']} objects "
                        f"per video, coverage {stats['frame_coverage']}, J&F vs truth {stats['truth_mean_j_and_f']}")
    record = TrackingRecord(
        metrics={k: v for k, v in stats.items() if isinstance(v, (int, float)) and v is not None},
        tags={"sam3": next(iter(results.values()), {}).get("sam3", "")},
        files={"segmentation_results.json": json.dumps(results, indent=1)})
    log.info("Segmentation: %d of %d videos, %.2f objects per video, coverage %s, J&F vs truth %s",
             len(ok), len(results), stats["objects_per_video"] or 0, stats["frame_coverage"], stats["truth_mean_j_and_f"])
    return stats, record
