"""SAM3 video segmentation speed and memory: frames/s of propagation and of overlay+encode, and peak memory
at 1x and 4x video length (bounded session state keeps the 4x peak within 10% of 1x).

    .venv/bin/python benchmarks/segmentation_throughput.py                       # tiny SAM3, CPU, 160x120
    python benchmarks/segmentation_throughput.py --model facebook/sam3 --size 1008 --frames 120   # a GPU

Targets on one H100 with the real model: at least 25 frames/s for up to 4 objects at 1008 px.
"""

from __future__ import annotations

import argparse
import logging
import time

from _common import params, scratch


def video(path, frames: int, size: int) -> str:
    """A demo scene rendered at `size` px wide (4:3), `frames` long."""
    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.demo.video import render, write_video

    demo = params().demo_data
    pixels, _ = render(make_scene(1, demo), demo.colours, size, size * 3 // 4, frames)
    write_video(str(path), pixels, demo.video.fps, None, 16000)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="hub id or path of a real SAM3 (default: the tiny one from conf/base)")
    parser.add_argument("--size", type=int, default=160, help="frame width in px")
    parser.add_argument("--frames", type=int, default=48, help="frames of the 1x video")
    parser.add_argument("--prompts", default="woman in red coat,brown table,green laptop,white cup")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import torch

    from thinking_summarizer.segmentation.masks import OverlayStyle, overlay
    from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_models
    from thinking_summarizer.schemas.params.tiny import TinyModels
    from thinking_summarizer.segmentation.sam3 import Sam3Segmenter
    from thinking_summarizer.io.media import VideoWriter
    from thinking_summarizer.runtime.torch_runtime import peak_memory_mb, reset_peak_memory

    tmp, conf = scratch(), params()
    segmentation = conf.video_segmentation
    cfg = segmentation.sam3.model_copy(update={"model": args.model or str(tmp / "tiny-sam3")})
    style = OverlayStyle(**segmentation.render.model_dump())
    if not args.model:  # the tiny one, as demo_data builds it
        build_tiny_models(TinyModels(sam3=conf.tiny_models.sam3), conf.thinking_generation, cfg.model)
    segmenter = Sam3Segmenter(cfg)
    prompts = args.prompts.split(",")
    rows = {}
    for name, frames in (("1x", args.frames), ("4x", 4 * args.frames)):
        path = video(tmp / f"{name}.mp4", frames, args.size)
        encode = {"seconds": 0.0}
        factor = style.scale(args.size * 3 // 4)  # drawn as the pipeline draws it: small videos scaled up
        writer = VideoWriter(tmp / f"{name}-masked.mp4", 8, args.size * factor, args.size * 3 // 4 * factor)

        def on_frame(index, frame, masks, so_far):
            started = time.perf_counter()
            writer.write(overlay(frame, masks, {i: so_far.prompt_of.get(i, "") for i in masks}, style))
            encode["seconds"] += time.perf_counter() - started

        reset_peak_memory(segmenter.device)
        result = segmenter.track(path, prompts, on_frame)
        writer.close()
        rows[name] = (result.frames, result.frames / result.seconds_model, result.frames / encode["seconds"],
                      max(result.state_bytes) / 2**20, peak_memory_mb(segmenter.device), len(result.prompt_of))
    if segmenter.device.type == "cuda":
        torch.cuda.synchronize()
    print(f"SAM3: {cfg.model} on {segmenter.device} ({segmenter.dtype}), {args.size} px, {len(prompts)} prompts")
    for name, (frames, fps, enc, state, peak, objects) in rows.items():
        print(f"{name}: {frames} frames, {objects} objects; propagation {fps:.1f} frames/s; overlay+encode "
              f"{enc:.1f} frames/s; session state peak {state:.1f} MB; process peak {peak:.0f} MB")
    ratio = rows["4x"][3] / rows["1x"][3]
    print(f"session state at 4x / 1x: {ratio:.3f} (target <= 1.10); "
          f"process peak 4x / 1x: {rows['4x'][4] / rows['1x'][4]:.3f}")


if __name__ == "__main__":
    main()
