"""Video and audio files through PyAV (FFmpeg): streamed frame reading, the audio track, H.264 writing.

Every reader raises `MediaError` naming the file, so callers can reject one sample and go on.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class MediaError(OSError):
    """A video that is missing, unreadable, truncated or has no frames."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    num_frames: int
    width: int
    height: int
    has_audio: bool


def _open(path: str | Path) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise MediaError(f"{path}: no such video file")
    try:
        return av.open(str(path))
    except av.FFmpegError as err:
        raise MediaError(f"{path}: cannot open as a video ({err})") from err


def probe(path: str | Path) -> VideoInfo:
    """Stream facts from the container header (frame count estimated from duration when absent), checked against
    the file in one pass: every video packet is read and packets decoded until the first frame, so a truncated file
    whose header promises more frames than it holds, or one whose bytes are corrupted, raises `MediaError`."""
    try:
        with _open(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            frames = stream.frames
            header_frames = frames
            if not frames and stream.duration:
                frames = round(float(stream.duration * stream.time_base) * fps)
            info = VideoInfo(str(path), fps, int(frames), stream.codec_context.width, stream.codec_context.height,
                             bool(container.streams.audio))
            packets, decoded = 0, False
            for packet in container.demux(stream):  # one pass: count every packet, decode until the first frame
                packets += bool(packet.size)
                decoded = decoded or bool(packet.decode())
        if header_frames and packets < header_frames:  # a count the header states, never our estimate
            raise MediaError(f"{path}: truncated or damaged: the header promises {header_frames} frames, the file holds "
                             f"{packets}")
        if not decoded:
            raise MediaError(f"{path}: no decodable frames")
    except MediaError:
        raise
    except Exception as err:  # a damaged file makes the demuxer raise more than FFmpegError (UnicodeDecodeError)
        raise MediaError(f"{path}: cannot read as a video ({type(err).__name__}: {err})") from err
    return info


def iter_frames(path: str | Path, stride: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, RGB uint8 array) for every `stride`-th frame, decoding one frame at a time."""
    yielded = 0
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % stride:
                    continue
                yield index, frame.to_ndarray(format="rgb24")
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.FFmpegError as err:
            raise MediaError(f"{path}: decoding failed after {yielded} frames ({err})") from err
    if yielded == 0:
        raise MediaError(f"{path}: no decodable frames")


def read_frames(path: str | Path, fps: float, max_frames: int) -> np.ndarray:
    """Frames sampled at about `fps` (at most `max_frames`, evenly spread), as (T, H, W, 3) RGB."""
    info = probe(path)
    stride = max(1, round(info.fps / fps))
    if info.num_frames and info.num_frames / stride > max_frames:
        stride = int(np.ceil(info.num_frames / max_frames))
    frames = [frame for _, frame in iter_frames(path, stride, max_frames)]
    if len(frames) % 2:  # the vision encoder groups frames in pairs
        frames.append(frames[-1])
    return np.stack(frames)


def read_audio(path: str | Path, sampling_rate: int, max_seconds: float) -> np.ndarray | None:
    """The first audio track as mono float32 at `sampling_rate`, cut at `max_seconds`; None when silent."""
    with _open(path) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        limit, chunks, total = int(max_seconds * sampling_rate), [], 0
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray()[0])
                    total += chunks[-1].size
                if total >= limit:
                    break
        except av.FFmpegError as err:
            raise MediaError(f"{path}: audio decoding failed ({err})") from err
    if not chunks:
        return None
    return np.concatenate(chunks)[:limit].astype(np.float32)


class VideoWriter:
    """Write frames one at a time as H.264 (yuv420p) MP4, optionally with a mono audio track."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int, crf: int = 23,
                 audio_rate: int | None = None, preset: str = "veryfast"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.container = av.open(self.path, "w")
        self.video = self.container.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1001))
        # yuv420p needs even sides; odd ones are padded by one pixel
        self.video.width, self.video.height = width + width % 2, height + height % 2
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": preset}
        self.audio = None
        if audio_rate:
            self.audio = self.container.add_stream("aac", rate=audio_rate)
            self.audio.layout = "mono"

    def write(self, frame_rgb: np.ndarray) -> None:
        h, w = frame_rgb.shape[:2]
        if (w, h) != (self.video.width, self.video.height):
            frame_rgb = np.pad(frame_rgb, ((0, self.video.height - h), (0, self.video.width - w), (0, 0)), mode="edge")
        for packet in self.video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")):
            self.container.mux(packet)

    def write_audio(self, samples: np.ndarray) -> None:
        """Mono float samples in [-1, 1] at the writer's `audio_rate`."""
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.audio.rate
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for stream in (self.video, self.audio):
            if stream is not None:
                for packet in stream.encode():
                    self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def copy_audio(source: str | Path, video_file: str | Path) -> bool:
    """Mux `source`'s audio track, copied as it is, into `video_file` (replaced in place); False when the source
    has no sound."""
    video_file = Path(video_file)
    with _open(source) as src:
        if not src.streams.audio:
            return False
        partial = video_file.with_name(f".{video_file.name}.with-audio.mp4")
        with _open(video_file) as picture, av.open(str(partial), "w") as out:
            pairs = [(picture, picture.streams.video[0]), (src, src.streams.audio[0])]
            targets = [out.add_stream_from_template(stream) for _, stream in pairs]
            for (container, stream), target in zip(pairs, targets):
                for packet in container.demux(stream):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = target
                    out.mux(packet)
    partial.replace(video_file)
    return True
