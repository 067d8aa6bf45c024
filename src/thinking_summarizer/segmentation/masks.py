"""Masks on disk and on screen: run-length encoding streamed to gzip JSON Lines, translucent overlays,
and region (J) and boundary (F) agreement with ground truth."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple
from pathlib import Path

import cv2
import numpy as np

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths of a boolean mask in row-major order, starting with a (possibly empty) run of zeros."""
    flat = np.concatenate([[False], mask.ravel().astype(bool), [False]])
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    runs = np.diff(np.concatenate([[0], changes, [mask.size]]))
    return runs.tolist()


def rle_decode(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(shape)


class MaskWriter:
    """One line per frame: {"frame": i, "size": [h, w], "objects": {id: runs}}, gzip-compressed."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = gzip.open(path, "wt")

    def write(self, frame: int, shape: tuple[int, int], masks: dict[int, np.ndarray]) -> None:
        line = {"frame": frame, "size": list(shape), "objects": {str(k): rle_encode(m) for k, m in masks.items()}}
        self.file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.file.close()


def read_masks(path: str | Path) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(frame index, {object id: bool mask}) per stored frame, one frame in memory at a time."""
    with gzip.open(path, "rt") as file:
        for line in file:
            row = json.loads(line)
            shape = tuple(row["size"])
            yield row["frame"], {int(k): rle_decode(v, shape) for k, v in row["objects"].items()}


FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayStyle:
    """How the masked video is drawn: mask tint, the smallest height it is shown at (a smaller video is scaled up,
    its masks nearest-neighbour, so its labels can be read), and the label text's height as a share of that."""

    alpha: float = 0.45
    min_height: int = 0
    label_height: float = 0.04

    def scale(self, height: int) -> int:
        """The whole factor a frame `height` pixels high is scaled up by."""
        return max(1, -(-self.min_height // height)) if self.min_height else 1

    def font(self, height: int) -> tuple[float, int]:
        """(font scale, stroke thickness) for capitals `label_height` of a frame `height` pixels high."""
        font_scale = max(8.0, self.label_height * height) / _capital_height()
        return font_scale, max(1, round(font_scale * 2))


@functools.cache
def _capital_height() -> int:
    """The inked height of a capital at font scale 1 (cv2's getTextSize reports the font's nominal height)."""
    canvas = np.zeros((60, 60), np.uint8)
    cv2.putText(canvas, "H", (5, 50), FONT, 1.0, 255, 1, cv2.LINE_8)
    return int(np.count_nonzero(canvas.any(axis=1)))


def _anchor(mask: np.ndarray) -> tuple[int, int]:
    """The most interior point of the mask's largest connected region (a scattered mask's main body)."""
    count, regions, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if count > 1 else 0
    inside = cv2.distanceTransform((regions == largest).astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return int(x), int(y)


class Label(NamedTuple):
    text: str
    x: int
    y: int
    width: int
    height: int
    baseline: tuple[int, int]  # where the text is drawn from (cv2's bottom-left origin)


def label_boxes(masks: dict[int, np.ndarray], labels: dict[int, str], shape: tuple[int, int],
                font: tuple[float, int]) -> dict[int, Label]:
    """Where each object's label goes, centred on its largest region, moved up or down by whole label heights
    until it overlaps no label placed before it, and kept inside the frame."""
    height, width = shape
    placed: dict[int, Label] = {}
    for obj_id in sorted(masks, key=lambda i: -int(masks[i].sum())):  # big objects choose first
        if not masks[obj_id].any():
            continue
        text = f"{obj_id}: {labels.get(obj_id, '')}"
        (text_w, text_h), descent = cv2.getTextSize(text, FONT, *font)
        pad = max(2, text_h // 4)
        w, h = text_w + 2 * pad, text_h + descent + 2 * pad
        cx, cy = _anchor(masks[obj_id])
        for shift in (0, 1, -1, 2, -2, 3, -3, 4, -4):
            x = min(max(0, cx - w // 2), max(0, width - w))
            y = min(max(0, cy - h // 2 + shift * h), max(0, height - h))
            if not any(x < o.x + o.width and o.x < x + w and y < o.y + o.height and o.y < y + h
                       for o in placed.values()):
                break
        placed[obj_id] = Label(text, x, y, w, h, (x + pad, y + pad + text_h))
    return placed


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with the background (relative luminance, sRGB weights)."""
    luminance = (0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]) / 255
    return (0, 0, 0) if luminance > 0.45 else (255, 255, 255)


def overlay(frame_rgb: np.ndarray, masks: dict[int, np.ndarray], labels: dict[int, str],
            style: OverlayStyle) -> np.ndarray:
    """The frame (scaled up to `style.min_height`) with each object's mask tinted in its colour and its label, in
    black or white on a box of that colour, on its own largest region."""
    factor = style.scale(frame_rgb.shape[0])
    if factor > 1:
        frame_rgb = cv2.resize(frame_rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        masks = {i: np.repeat(np.repeat(m, factor, axis=0), factor, axis=1) for i, m in masks.items()}
    out = frame_rgb.astype(np.float32)
    for obj_id, mask in masks.items():
        colour = np.array(PALETTE[obj_id % len(PALETTE)], dtype=np.float32)
        out[mask] = (1 - style.alpha) * out[mask] + style.alpha * colour
    out = out.astype(np.uint8)
    font = style.font(out.shape[0])
    for obj_id, label in label_boxes(masks, labels, out.shape[:2], font).items():
        colour = PALETTE[obj_id % len(PALETTE)]
        cv2.rectangle(out, (label.x, label.y), (label.x + label.width - 1, label.y + label.height - 1), colour, -1)
        cv2.putText(out, label.text, label.baseline, FONT, font[0], text_colour(colour), font[1], cv2.LINE_AA)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Region similarity J; 1.0 when both masks are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _boundary(mask: np.ndarray) -> np.ndarray:
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return mask.astype(bool) & ~eroded


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> float:
    """Contour accuracy F (DAVIS-style): boundary pixels matched within `tolerance` pixels."""
    bp, bt = _boundary(pred), _boundary(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    precision = (bp & cv2.dilate(bt.astype(np.uint8), kernel).astype(bool)).sum() / bp.sum()
    recall = (bt & cv2.dilate(bp.astype(np.uint8), kernel).astype(bool)).sum() / bt.sum()
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def score_against_truth(masks_path: str | Path, truth: np.ndarray, truth_ids: list[int]) -> dict:
    """Pair each ground-truth object with the track that overlaps it best over the video, then report
    J (IoU), F (boundary) and J&F per object, and the mean IoU per frame. `truth` is (T, H, W) labels."""
    frames, pair_j, pair_f = [], [], []
    tracks: list[int] = []
    for index, masks in read_masks(masks_path):
        gt = truth[min(index, len(truth) - 1)]
        for obj_id in masks:
            if obj_id not in tracks:
                tracks.append(obj_id)
        empty = np.zeros(gt.shape, bool)
        j = np.array([[iou(masks.get(t, empty), gt == k) for k in truth_ids] for t in tracks]).reshape(len(tracks), -1)
        f = np.array([[boundary_f(masks.get(t, empty), gt == k) for k in truth_ids] for t in tracks]).reshape(len(tracks), -1)
        frames.append(index)
        pair_j.append(j)
        pair_f.append(f)
    width = len(tracks)
    pad = lambda m: np.pad(m, ((0, width - m.shape[0]), (0, 0)))  # noqa: E731  (tracks that appear later)
    J = np.stack([pad(m) for m in pair_j]) if frames else np.zeros((0, 0, len(truth_ids)))
    F = np.stack([pad(m) for m in pair_f]) if frames else np.zeros((0, 0, len(truth_ids)))
    mean_j = J.mean(axis=0) if len(frames) else np.zeros((0, len(truth_ids)))
    assigned: dict[int, int] = {}
    for flat in np.argsort(-mean_j, axis=None):
        t, k = np.unravel_index(flat, mean_j.shape)
        if t not in assigned.values() and k not in assigned and mean_j[t, k] > 0:
            assigned[int(k)] = int(t)
    objects = []
    for k, truth_id in enumerate(truth_ids):
        t = assigned.get(k)
        j = float(J[:, t, k].mean()) if t is not None else 0.0
        f = float(F[:, t, k].mean()) if t is not None else 0.0
        objects.append({"truth_object": truth_id, "track": tracks[t] if t is not None else None,
                        "iou": round(j, 4), "boundary_f": round(f, 4), "j_and_f": round((j + f) / 2, 4)})
    per_frame = [float(np.mean([J[i, assigned[k], k] if k in assigned else 0.0 for k in range(len(truth_ids))]))
                 for i in range(len(frames))] if truth_ids else []
    return {"objects": objects, "frame_iou": [round(v, 4) for v in per_frame],
            "mean_iou": round(float(np.mean([o["iou"] for o in objects])), 4) if objects else 0.0,
            "mean_j_and_f": round(float(np.mean([o["j_and_f"] for o in objects])), 4) if objects else 0.0}
