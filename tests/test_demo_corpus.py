import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from thinking_summarizer.demo.corpus import write_corpus
from thinking_summarizer.demo.scenes import make_scene
from thinking_summarizer.io.media import probe, read_audio
from thinking_summarizer.schemas import DemoScene, SourceRecord
from thinking_summarizer.text.tagged_output import extract

from thinking_summarizer.schemas.params.data import DemoData

from .conftest import typed


@pytest.fixture(scope="module")
def demo_cfg(tmp_path_factory) -> DemoData:
    cfg = typed("demo_data")
    return cfg.model_copy(update={"root": str(tmp_path_factory.mktemp("demo")), "n_scenes": 30})


@pytest.fixture(scope="module")
def corpus(demo_cfg) -> tuple[Path, list[DemoScene]]:
    write_corpus(demo_cfg)
    root = Path(demo_cfg.root)
    truths = [DemoScene.model_validate_json(line) for line in (root / "ground_truth.jsonl").read_text().splitlines()]
    return root, truths


def test_same_seed_same_corpus_other_seed_differs(demo_cfg):
    assert make_scene(5, demo_cfg) == make_scene(5, demo_cfg)
    assert make_scene(5, demo_cfg).thinking != make_scene(5, demo_cfg.model_copy(update={"seed": 8})).thinking


def test_sources_follow_the_real_schemas(corpus):
    root, truths = corpus
    records = json.loads((root / "intentbench.json").read_text())
    records += json.loads((root / "intenttrain.json").read_text())
    records += [json.loads(line) for line in (root / "daily_omni.jsonl").read_text().splitlines()]
    parsed = [SourceRecord.model_validate(r) for r in records]
    assert len(parsed) == 30 + 1  # one intentbench video asked again under intenttrain
    assert {(root / "videos" / r.media).is_file() for r in parsed} == {True}
    assert {r.problem_type for r in parsed} == {"multiple choice", "emer_ov_mc"}


def test_thinking_names_visible_objects_and_rules_out_distractors(demo_cfg, corpus):
    _, truths = corpus
    for truth in truths:
        scene = make_scene(int(truth.scene_id.split("_")[1]), demo_cfg)
        parts = extract(scene.solution)
        assert parts.problems == []
        assert demo_cfg.thinking_chars.min <= len(parts.thinking) <= demo_cfg.thinking_chars.max
        assert 3 <= len(truth.objects) <= 4 and truth.objects[0].priority == "primary"
        for obj in truth.objects:
            assert obj.description in parts.thinking
        categories = {o.category for o in truth.objects}
        for noun in truth.distractors:
            assert noun in parts.thinking
            assert noun not in categories
            assert not any(noun in o.description for o in truth.objects)


def test_masks_match_the_video(demo_cfg, corpus):
    root, truths = corpus
    colours = demo_cfg.colours
    for truth in truths[:10]:
        masks = np.load(root / truth.masks)["masks"]
        capture = cv2.VideoCapture(str(root / truth.video))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        assert masks.shape == (truth.num_frames, truth.height, truth.width) == (len(frames), *frames[0].shape[:2])
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(truth.fps)
        for obj in truth.objects:
            assert (masks == obj.object_id).any(axis=(1, 2)).mean() > 0.5, "object mostly occluded"
        for frame, mask in zip(frames, masks):
            for obj in truth.objects:
                region = mask == obj.object_id
                if obj.category == "person" or region.sum() < 50:
                    continue  # a person's mask includes the skin-coloured head
                # eroded interior avoids codec blur at the edges
                inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                if inner.sum() < 10:
                    continue
                mean = frame[inner].mean(axis=0)
                assert np.abs(mean - colours[obj.colour]).max() < 40, (truth.scene_id, obj.description)


def test_videos_are_h264_and_most_carry_a_voice_track(demo_cfg, corpus):
    root, truths = corpus
    infos = [probe(root / t.video) for t in truths]
    assert {(i.num_frames, i.width, i.height) for i in infos} == {(24, 160, 120)}
    with_sound = [t for t, i in zip(truths, infos) if i.has_audio]
    assert 0.5 < len(with_sound) / len(truths) < 1.0
    track = read_audio(root / with_sound[0].video, 16000, 60)
    seconds = demo_cfg.video.num_frames / demo_cfg.video.fps
    assert track.size == pytest.approx(seconds * 16000, rel=0.1) and np.abs(track).max() > 0.1
