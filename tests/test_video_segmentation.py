"""SAM3 video segmentation with a tiny random SAM3 built offline, on synthetic demo videos."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from thinking_summarizer.demo.scenes import make_scene
from thinking_summarizer.demo.video import render, write_video
from thinking_summarizer.io.media import probe
from thinking_summarizer.io.model_datasets import Sam3Dataset, StudentsDataset, TeacherDataset, ThinkerDataset
from thinking_summarizer.io.result_cache import ResponseCache
from thinking_summarizer.pipelines.video_segmentation.nodes import _prompts, plan_samples, segment_videos, think_and_summarize
from thinking_summarizer.segmentation.masks import read_masks, rle_decode, rle_encode
from thinking_summarizer.segmentation.sam3 import Sam3Segmenter
from thinking_summarizer.text.summary_format import category_lookup

from thinking_summarizer.schemas.params.segmentation import Sam3Settings, VideoSegmentation

from .conftest import build_tiny, model, typed

PARAMS = typed("video_segmentation")
DEMO = typed("demo_data")
NO_TRUTH: dict = {}  # a user's videos: no ground truth


def scene_video(path: Path, index: int, frames: int, sound: bool = False) -> tuple[Path, object]:
    scene = make_scene(index, DEMO)
    video = DEMO.video
    pixels, _ = render(scene, DEMO.colours, video.width, video.height, frames)
    track = np.sin(np.linspace(0, 440 * 2 * np.pi * frames / video.fps, int(16000 * frames / video.fps)))
    write_video(str(path), pixels, video.fps, 0.3 * track if sound else None, 16000)
    return path, scene


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> VideoSegmentation:
    model = build_tiny(tmp_path_factory, "sam3")
    sam3 = PARAMS.sam3.model_copy(update={"model": str(model)})
    return PARAMS.model_copy(update={"sam3": sam3, "staging_dir": str(model.parent / "staging")})


@pytest.fixture(scope="module")
def segmenter(cfg) -> Sam3Segmenter:
    return Sam3Segmenter(cfg.sam3)


def sam3(cfg: VideoSegmentation):
    """SAM3 as the catalog's `sam3` entry hands it to segment_videos."""
    return model(Sam3Dataset, cfg=cfg.sam3)


def row(sample_id: str, video: Path, prompts: list[str]) -> dict:
    return {"sample_id": sample_id, "video_id": video.stem, "video_path": str(video), "question": "q", "thinking": "t",
            "answer": "A", "summary": "s", "prompts": prompts, "timings": {}, "error": ""}


def test_rle_round_trip():
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    mask[4, 6] = True
    assert (rle_decode(rle_encode(mask), mask.shape) == mask).all()
    assert rle_encode(np.zeros((2, 2), bool)) == [4]


def test_prompts_put_primary_objects_first():
    summary = ("## Key points\n1. a\n2. b\n3. c\n\n## Visual objects\nSecondary Objects:\n- a white cup | white cup\n"
               "- a white mug | white cup\n- a brown desk | brown desk\nPrimary Objects:\n- a man in red | man in red\n"
               "- a blurry shape | shape\n\n## Emotion indicators\n- none")
    lookup = category_lookup(typed("vocabulary"))
    assert _prompts(summary, 3, lookup, None) == (["man in red", "shape", "white cup"], 0)
    assert _prompts(summary, 5, lookup, None) == (["man in red", "shape", "white cup", "brown desk"], 0)


def test_a_prompt_that_says_what_its_description_does_not_is_replaced_by_the_descriptions_words():
    summary = ("## Key points\n1. a\n2. b\n3. c\n\n## Visual objects\nPrimary Objects:\n"
               "- a girl in a red sweater on the right in the background | man man\n"
               "- the hands of the girl in a red sweater | man man's hand\nSecondary Objects:\n"
               "- a black laptop in the middle | black laptop\n\n## Emotion indicators\n- none")
    lookup = category_lookup(typed("vocabulary"))
    prompts, replaced = _prompts(summary, 4, lookup, PARAMS.ungrounded_prompts)
    assert prompts == ["girl in a red sweater", "hands of the girl in a red sweater", "black laptop"]
    assert replaced == 2


def test_masks_video_and_results(cfg, tmp_path):
    video, scene = scene_video(tmp_path / "scene.mp4", 3, 16)
    prompts = [o.prompt for o in scene.objects[:2]]
    results, videos, masks = segment_videos([row("s1", video, prompts)], sam3(cfg), {}, cfg, NO_TRUTH)
    result = results["s1"]
    assert result["status"] == "ok" and result["frames_tracked"] == 16 and result["prompts"] == prompts
    stored = list(read_masks(masks["s1"]))
    assert [f for f, _ in stored] == list(range(16))
    assert all(m.shape == (120, 160) and m.dtype == bool for _, ms in stored for m in ms.values())
    # an object id keeps its prompt for the whole video, and ids are never reused
    assert set(result["frames_per_object"]) == {str(i) for i in {i for _, ms in stored for i in ms}}
    assert sum(len(v) for v in result["objects_per_prompt"].values()) == result["objects"]
    assert result["objects"] >= 1, "the tiny SAM3 must find something to draw"
    capture = cv2.VideoCapture(videos["s1"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 16
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(DEMO.video.fps)
    # shown 4x (render.min_height 480), the masks at the video's own size
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    source = cv2.VideoCapture(str(video))
    inside, outside = [], []
    for _, frame_masks in stored:
        ok, drawn = capture.read()
        ok_source, original = source.read()
        assert ok and ok_source
        drawn = cv2.resize(drawn, (160, 120), interpolation=cv2.INTER_AREA)
        union = np.zeros((120, 160), bool)
        for mask in frame_masks.values():
            union |= mask
        diff = np.abs(drawn.astype(int) - original.astype(int)).sum(axis=2)
        # medians: a label's box may reach past a small mask, and is no tint
        if union.sum() > 50:
            inside.append(np.median(diff[union]))
        if (~union).sum() > 50:
            outside.append(np.median(diff[~union]))
    assert inside, "some frame has a mask to draw"
    assert np.mean(inside) > 3 * np.mean(outside) + 10


def test_state_stays_flat_on_a_four_times_longer_video(segmenter, tmp_path):
    short, scene = scene_video(tmp_path / "short.mp4", 5, 24)
    long, _ = scene_video(tmp_path / "long.mp4", 5, 96)
    prompts = [scene.objects[0].prompt]
    peak = {}
    for bounded in (True, False):
        segmenter.cfg = segmenter.cfg.model_copy(update={"bounded_memory": bounded})
        for name, video in (("1x", short), ("4x", long)):
            result = segmenter.track(str(video), prompts, lambda *_: None)
            peak[bounded, name] = max(result.state_bytes)
    segmenter.cfg = segmenter.cfg.model_copy(update={"bounded_memory": True})
    assert peak[True, "4x"] <= 1.1 * peak[True, "1x"]
    # without pruning the same session grows with the video: what the bound is for
    assert peak[False, "4x"] > 2 * peak[False, "1x"]


def test_broken_videos_fail_alone(cfg, tmp_path):
    good, scene = scene_video(tmp_path / "good.mp4", 7, 8)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:400])
    empty = tmp_path / "empty.mp4"
    write_video(str(empty), np.zeros((0, 120, 160, 3), np.uint8), 8, None, 16000)
    rows = [row("missing", tmp_path / "missing.mp4", ["cup"]), row("truncated", truncated, ["cup"]),
            row("empty", empty, ["cup"]), row("good", good, [scene.objects[0].prompt])]
    results, videos, masks = segment_videos(rows, sam3(cfg), {}, cfg, NO_TRUTH)
    assert {k: r["status"] for k, r in results.items()} == {"missing": "error", "truncated": "error",
                                                             "empty": "error", "good": "ok"}
    assert "missing.mp4" in results["missing"]["error"] and "no such video file" in results["missing"]["error"]
    assert "truncated.mp4" in results["truncated"]["error"] and "empty.mp4" in results["empty"]["error"]
    assert set(videos) == set(masks) == {"good"}


def test_a_demo_config_plans_its_videos_and_a_backend_without_thinking_fails_them_by_name(tmp_path):
    (tmp_path / "clips").mkdir()
    scene_video(tmp_path / "clips" / "a.mp4", 2, 8)
    config = {"samples": [{"video_path": "clips/a.mp4", "question": "How does she feel?",
                           "answer_options": ["A. Happy", "B. Sad"]},
                          {"video_path": str(tmp_path / "clips" / "a.mp4"), "question": "What is on the table?"}]}
    (tmp_path / "demo_config.json").write_text(json.dumps(config))
    plan = plan_samples([], [], PARAMS.model_copy(update={"demo_config": str(tmp_path / "demo_config.json")}))
    assert [p["video_path"] for p in plan] == [str(tmp_path / "clips" / "a.mp4")] * 2
    assert [p["problem_type"] for p in plan] == ["multiple choice", "free-form"]
    assert len({p["sample_id"] for p in plan}) == 2
    client = typed("openai_client")
    teacher = model(TeacherDataset, cfg=typed("teacher_labeling"), vocabulary=typed("vocabulary"),
                    qc=typed("summary_qc"), client=client)
    students = model(StudentsDataset, inference=typed("student_inference"), client=client)
    rows = think_and_summarize(plan, ResponseCache(tmp_path / "cache.sqlite"),
                               model(ThinkerDataset, cfg=typed("thinking_generation"), client=client), {}, teacher,
                               students, {}, PARAMS.model_copy(update={"summarizer": "teacher"}), typed("vocabulary"))
    # the default `reference` backend only replays a record's own chain; a new video needs a model backend
    assert all("no reference chain" in r["error"] for r in rows)


def test_the_masked_video_keeps_the_sources_sound(cfg, tmp_path):
    loud, _ = scene_video(tmp_path / "loud.mp4", 3, 8, sound=True)
    quiet, _ = scene_video(tmp_path / "quiet.mp4", 4, 8)
    rows = [row("loud", loud, ["person"]), row("quiet", quiet, ["person"])]
    results, videos, _ = segment_videos(rows, sam3(cfg), {}, cfg, NO_TRUTH)
    assert probe(loud).has_audio and not probe(quiet).has_audio
    assert (probe(videos["loud"]).has_audio, results["loud"]["audio"]) == (True, True)
    assert (probe(videos["quiet"]).has_audio, results["quiet"]["audio"]) == (False, False)
    assert probe(videos["loud"]).num_frames == 8



def _all_masks(sam3_cfg: Sam3Settings, video: Path, prompts: list[str]) -> tuple[list[dict], object]:
    seen = []
    result = Sam3Segmenter(sam3_cfg).track(str(video), prompts, lambda i, f, masks, r: seen.append(
        {k: v.copy() for k, v in masks.items()}))
    return seen, result


def test_batched_prompts_give_the_masks_of_one_detector_pass_per_prompt(cfg, tmp_path):
    video, _ = scene_video(tmp_path / "v.mp4", 5, 12)
    prompts = ["person", "red sofa", "white cup", "dog"]
    one_by_one, plain = _all_masks(cfg.sam3.model_copy(update={"batched_prompts": False}), video, prompts)
    batched, fast = _all_masks(cfg.sam3.model_copy(update={"batched_prompts": True}), video, prompts)
    assert plain.prompt_of == fast.prompt_of and len(plain.prompt_of) > 1
    assert [sorted(f) for f in batched] == [sorted(f) for f in one_by_one]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(batched, one_by_one) for k in a)


def test_detecting_every_few_frames_keeps_tracking_in_between(cfg, tmp_path):
    video, _ = scene_video(tmp_path / "v.mp4", 5, 12)
    every, result = _all_masks(cfg.sam3.model_copy(update={"detect_every": 3}), video, ["person", "red sofa"])
    assert result.frames == 12 and result.prompt_of
    # objects found on a detection frame carry masks through the frames without detection
    assert any(masks and index % 3 for index, masks in enumerate(every))


def test_a_reduced_input_size_still_segments_the_video(cfg, tmp_path):
    video, _ = scene_video(tmp_path / "v.mp4", 5, 8)
    full, at_full = _all_masks(cfg.sam3, video, ["person", "red sofa"])
    small, at_small = _all_masks(cfg.sam3.model_copy(update={"image_size": 112}), video, ["person", "red sofa"])
    assert at_small.frames == 8 and at_small.prompt_of
    # masks come back at the video's own size whatever the model's input size
    shapes = {m.shape for frame in small for m in frame.values()}
    assert shapes == {m.shape for frame in full for m in frame.values()} == {(at_full.height, at_full.width)}


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours."""
    def luminance(c):
        c = np.asarray(c, float) / 255
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_labels_are_legible_and_each_sits_on_its_own_objects_largest_region():
    from thinking_summarizer.segmentation.masks import PALETTE, OverlayStyle, overlay, text_colour

    frame = np.full((120, 160, 3), 90, np.uint8)
    scattered = np.zeros((120, 160), bool)
    scattered[2:6, 2:6] = True            # a speck in the corner
    scattered[60:110, 90:150] = True      # the object's body
    overlapping = np.zeros((120, 160), bool)
    overlapping[65:105, 95:145] = True    # on top of the first object's body
    out = overlay(frame, {1: scattered, 2: overlapping}, {1: "woman", 2: "cup"},
                  OverlayStyle(alpha=0.45, min_height=480, label_height=0.04))
    assert out.shape == (480, 640, 3)     # the demo's 120-pixel video is shown 4x
    boxes = {}
    for obj_id in (1, 2):
        box_colour, ink = PALETTE[obj_id], text_colour(PALETTE[obj_id])
        assert _contrast(box_colour, ink) >= 4.5, (box_colour, ink)  # WCAG AA for text
        ink_pixels = np.abs(out.astype(int) - ink).max(axis=2) <= 10
        box_pixels = np.abs(out.astype(int) - box_colour).max(axis=2) <= 1
        ys, xs = np.nonzero(box_pixels)
        assert len(xs), f"label {obj_id} not drawn"
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        text = ink_pixels[y0:y1 + 1, x0:x1 + 1]
        rows = np.nonzero(text.any(axis=1))[0]
        assert rows.size and rows.max() - rows.min() + 1 >= 0.03 * 480, "text under 3% of the frame's height"
        boxes[obj_id] = (x0, y0, x1, y1)
    x0, y0, x1, y1 = boxes[1]
    assert 360 <= (x0 + x1) / 2 <= 600 and 240 <= (y0 + y1) / 2 <= 440  # on the body, not at the corner speck
    a, b = boxes[1], boxes[2]
    assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]  # the two labels do not overlap


def test_a_prompt_longer_than_the_text_encoder_takes_is_cut_to_a_word_prefix_not_a_stopped_run(cfg, tmp_path):
    """Sam3VideoProcessor pads a prompt to 32 tokens and does not truncate: a student's run-on line stopped the
    run ("Sequence length must be less than max_position_embeddings (got 126 ...)")."""
    video, _ = scene_video(tmp_path / "long.mp4", 4, 4)
    long = "surprised does not fit trembling " * 20
    results, _, _ = segment_videos([row("s1", video, ["girl in a red sweater", long])], sam3(cfg), {}, cfg, NO_TRUTH)
    result = results["s1"]
    assert result["status"] == "ok"
    fitted = result["prompts"][1]
    assert long.startswith(fitted) and 3 < len(fitted.split()) < 32
    assert result["prompts"][0] == "girl in a red sweater"
