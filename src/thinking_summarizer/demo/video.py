"""Render a demo scene as frames plus a per-frame label mask (0 = background, k = object k)."""

from __future__ import annotations

import cv2
import numpy as np

from thinking_summarizer.demo.scenes import DEPTH, HORIZONTAL, PlacedObject, Scene
from thinking_summarizer.io.media import VideoWriter
from thinking_summarizer.schemas.params.data import DemoAudio

SKIN_BGR = (140, 180, 225)


def _boxes(obj: PlacedObject, width: int, height: int, num_frames: int) -> list[tuple[int, int, int, int]]:
    """Per-frame (x0, y0, x1, y1) of an object drifting at its velocity and bouncing off the edges."""
    w, h = int(obj.size[0] * width), int(obj.size[1] * height)
    x, y = HORIZONTAL[obj.side] * width - w / 2, DEPTH[obj.depth] * height - h / 2
    vx, vy = obj.velocity
    boxes = []
    for _ in range(num_frames):
        x, y = min(max(x, 0), width - w), min(max(y, 0), height - h)
        boxes.append((int(x), int(y), int(x) + w, int(y) + h))
        if not 0 <= x + vx <= width - w:
            vx = -vx
        if not 0 <= y + vy <= height - h:
            vy = -vy
        x, y = x + vx, y + vy
    return boxes


def _draw(canvas: np.ndarray, obj: PlacedObject, box: tuple[int, int, int, int], colour, value) -> None:
    x0, y0, x1, y1 = box
    if obj.category == "person":
        head = max(3, (x1 - x0) // 2)
        cx = (x0 + x1) // 2
        skin = SKIN_BGR if canvas.ndim == 3 else value
        cv2.circle(canvas, (cx, y0 + head), head, skin, -1)
        cv2.rectangle(canvas, (x0, y0 + 2 * head), (x1, y1), colour, -1)
    elif obj.category in {"dog", "cat", "cup"}:
        cv2.ellipse(canvas, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, colour, -1)
    else:
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, -1)


def render(scene: Scene, colours: dict[str, tuple[int, int, int]], width: int, height: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) BGR uint8 and masks (T, H, W) uint8 labelled by object id (1-based)."""
    ramp = np.linspace(150, 110, height, dtype=np.float32)[:, None, None]
    background = np.broadcast_to(ramp * np.array([0.95, 1.0, 1.05], dtype=np.float32), (height, width, 3))
    background = background.astype(np.uint8)
    # draw far objects first so near ones occlude them, as in a real scene
    order = sorted(range(len(scene.objects)), key=lambda i: DEPTH[scene.objects[i].depth])
    tracks = {i: _boxes(scene.objects[i], width, height, num_frames) for i in order}
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        for i in order:
            obj = scene.objects[i]
            _draw(frame, obj, tracks[i][t], tuple(colours[obj.colour]), i + 1)
            _draw(masks[t], obj, tracks[i][t], i + 1, i + 1)
        frames[t] = frame
    return frames, masks


def voice(scene: Scene, audio: DemoAudio, seconds: float) -> np.ndarray | None:
    """A speech-like track: syllable bursts at the emotion's pitch; None for the scenes left silent."""
    rng = np.random.default_rng(int(scene.scene_id.split("_")[-1]))
    if rng.random() < audio.silent_share:
        return None
    rate = audio.sampling_rate
    t = np.arange(int(seconds * rate)) / rate
    pitch = audio.pitch_hz[scene.emotion] * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    syllables = (np.sin(2 * np.pi * rng.uniform(2.5, 4.5) * t) > 0.2).astype(np.float32)
    return (0.3 * syllables * np.sin(2 * np.pi * np.cumsum(pitch) / rate)).astype(np.float32)


def write_video(path: str, frames_bgr: np.ndarray, fps: float, track: np.ndarray | None, rate: int) -> None:
    """Write BGR frames (and the voice track, if any) as an H.264 MP4."""
    height, width = frames_bgr.shape[1:3]
    with VideoWriter(path, fps, width, height, crf=18, audio_rate=rate if track is not None else None) as writer:
        for frame in frames_bgr:
            writer.write(frame[..., ::-1])
        if track is not None:
            writer.write_audio(track)
