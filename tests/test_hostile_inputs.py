"""Hostile and damaged inputs at sampling (issue 20): links out of the video root, damaged and truncated videos,
absurd ratios, deep JSON. Each is one rejected record (or a clear error), never a crash or a read outside."""

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from thinking_summarizer.pipelines.data_sampling.nodes import load_sources

from .conftest import BASE_PARAMETERS
from .test_data_sampling import GOOD, REJECT, write_source, write_video


def _reasons(rejects):
    return {(r["index"], r["reason"]) for r in rejects}


def test_symlinks_inside_the_root_that_point_out_of_it_are_never_opened(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "folder").mkdir(parents=True)
    write_video(outside / "secret.mp4")
    write_video(outside / "folder" / "clip.mp4")
    source = write_source(tmp_path, "s", [GOOD | {"video": "ok.mp4"}, GOOD | {"video": "link.mp4"},
                                          GOOD | {"video": "linked_dir/clip.mp4"}], videos=["ok.mp4"])
    root = Path(source["video_root"])
    os.symlink(outside / "secret.mp4", root / "link.mp4")
    os.symlink(outside / "folder", root / "linked_dir")
    (root / "inner.mp4").symlink_to(root / "ok.mp4")  # a link that stays inside is fine
    samples, rejects = load_sources({"s": source}, REJECT)
    assert [Path(s["video_path"]).name for s in samples] == ["ok.mp4"]
    assert _reasons(rejects) == {(1, "outside_video_root"), (2, "outside_video_root")}
    assert all("elsewhere" in r["detail"] for r in rejects)
    inner = write_source(tmp_path, "t", [GOOD | {"video": "inner.mp4"}])
    inner["video_root"] = str(root)
    assert len(load_sources({"t": inner}, REJECT)[0]) == 1


def _faststart_mp4(path: Path, frames: int = 24) -> None:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):  # noise: every frame carries bytes, so a cut loses frames
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_a_damaged_or_truncated_video_rejects_its_record_not_the_source(tmp_path):
    source = write_source(tmp_path, "s", [GOOD | {"video": "ok.mp4"}, GOOD | {"video": "flipped.mp4"},
                                          GOOD | {"video": "cut.mp4"}], videos=["ok.mp4"])
    root = Path(source["video_root"])
    _faststart_mp4(root / "flipped.mp4")
    data = bytearray((root / "flipped.mp4").read_bytes())
    rng = np.random.default_rng(1)
    for at in rng.integers(0, len(data), len(data) // 3):
        data[at] ^= 0xFF
    (root / "flipped.mp4").write_bytes(bytes(data))
    _faststart_mp4(root / "cut.mp4")
    whole = (root / "cut.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(whole[: int(len(whole) * 0.4)])
    samples, rejects = load_sources({"s": source}, REJECT)
    assert [Path(s["video_path"]).name for s in samples] == ["ok.mp4"]
    assert _reasons(rejects) == {(1, "unreadable_video"), (2, "unreadable_video")}
    cut = next(r for r in rejects if r["index"] == 2)
    assert "cut.mp4" in cut["detail"] and "promises 24 frames" in cut["detail"]


@pytest.mark.parametrize("ratio", [float("inf"), float("nan")])
def test_an_infinite_ratio_is_refused_by_validation_naming_the_source(tmp_path, ratio):
    from pydantic import ValidationError

    from thinking_summarizer.schemas.params.data import DataSampling

    sampling = BASE_PARAMETERS["data_sampling"] | {"sources": {"daily_omni": {"path": str(tmp_path / "qa.json"),
                                                                             "ratio": ratio}}}
    with pytest.raises(ValidationError, match=r"sources\.daily_omni\.ratio"):
        DataSampling.model_validate(sampling)  # what the run's typed parameters do before any node


def test_deep_json_is_an_invalid_record_or_a_clear_source_error(tmp_path):
    from thinking_summarizer.pipelines.data_sampling.nodes import SourceDataError

    source = write_source(tmp_path, "s", [GOOD | {"video": "ok.mp4"}], jsonl=True, videos=["ok.mp4"])
    with open(source["path"], "a") as file:
        file.write("[" * 100_000 + "]" * 100_000 + "\n")
    samples, rejects = load_sources({"s": source}, REJECT)
    assert len(samples) == 1 and [(r["index"], r["reason"]) for r in rejects] == [(1, "invalid_json")]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SourceDataError, match=r"deep\.json: JSON nested deeper"):
        load_sources({"d": {"path": str(deep), "video_root": str(tmp_path)}}, REJECT)


def test_a_building_folder_the_project_did_not_make_is_never_removed(tmp_path, monkeypatch):
    from thinking_summarizer.tiny_models import ensure_built

    monkeypatch.chdir(tmp_path)
    theirs = tmp_path / "data" / "06_models" / "base.building"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="base.building exists and was not left by a build"):
        ensure_built(tmp_path / "data" / "06_models" / "base", {"r": 1}, lambda path: None)
    assert (theirs / "notes.txt").read_text() == "mine"
    # a build of ours that was killed is replaced
    theirs.rename(tmp_path / "kept")
    killed = tmp_path / "data" / "06_models" / "base.building"
    killed.mkdir()
    (killed / ".tiny_build_in_progress").touch()
    (killed / "half-written").write_text("")
    built = ensure_built(tmp_path / "data" / "06_models" / "base", {"r": 1}, lambda path: (path / "w").write_text("1"))
    assert built and (tmp_path / "data" / "06_models" / "base" / "w").is_file()
    assert not killed.exists() and not (tmp_path / "data" / "06_models" / "base" / "half-written").exists()


def test_a_key_given_twice_with_different_values_is_named(tmp_path):
    source = write_source(tmp_path, "s", [GOOD | {"video": "ok.mp4"}], videos=["ok.mp4"])
    good = json.dumps(GOOD | {"video": "ok.mp4"})
    twice = good[:-1] + ', "problem": "Another question?", "answer": "A"}'  # answer repeated with the same value
    Path(source["path"]).write_text(f"[{good}, {twice}]")
    samples, rejects = load_sources({"s": source}, REJECT)
    assert len(samples) == 1
    assert [(r["index"], r["field"], r["reason"]) for r in rejects] == [(1, "problem", "duplicate_key")]
