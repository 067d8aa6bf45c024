"""SAM3 through transformers (`Sam3VideoModel` + `Sam3VideoProcessor`), streaming one frame at a time.

A SAM3 video session keeps every frame and every frame's memory features, so its memory grows with video
length (users of the reference code run out of GPU memory on long videos). Here each frame is decoded,
processed and dropped, and after each frame the session forgets what the tracker can no longer attend
to: frames older than its memory window, and conditioning frames beyond the ones it selects.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import Sam3VideoConfig, Sam3VideoModel, Sam3VideoProcessor
from transformers.models.sam3_video.modeling_sam3_video import nms_masks

from thinking_summarizer.io.media import iter_frames, probe
from thinking_summarizer.runtime.torch_runtime import resolve_device, resolve_dtype
from thinking_summarizer.schemas.params.segmentation import Sam3Settings

log = logging.getLogger(__name__)
# (frame index, RGB frame, {object id: bool mask}, the result so far)
FrameCallback = Callable[[int, np.ndarray, dict[int, np.ndarray], "TrackResult"], None]


@dataclass
class TrackResult:
    """What one video's tracking produced; masks themselves go to the frame callback."""

    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    prompt_of: dict[int, str] = field(default_factory=dict)     # object id -> its prompt
    frames_with: dict[int, int] = field(default_factory=dict)   # object id -> frames where its mask is non-empty
    frames_with_any: int = 0
    seconds_model: float = 0.0
    state_bytes: list[int] = field(default_factory=list)        # session tensor bytes after each frame


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def session_bytes(session) -> int:
    """Bytes of every tensor the session holds (frames, per-frame outputs, cached features, mask inputs)."""
    return sum(_tensor_bytes(x) for x in (session.processed_frames or {}, session.output_dict_per_obj,
                                           session.mask_inputs_per_obj, session.cache._vision_features))


def prune_session(session, frame_idx: int, window: int, max_cond_frames: int) -> None:
    """Forget what the tracker no longer reads: earlier frames, memories older than `window` frames,
    and conditioning frames beyond the first and the `max_cond_frames - 1` most recent."""
    horizon = frame_idx - window
    for t in [t for t in (session.processed_frames or {}) if t < frame_idx]:
        del session.processed_frames[t]
    for outputs in session.output_dict_per_obj.values():
        old = outputs["non_cond_frame_outputs"]
        for t in [t for t in old if t < horizon]:
            del old[t]
        cond = outputs["cond_frame_outputs"]
        if len(cond) > max_cond_frames:
            keep = {min(cond), *sorted(cond)[-(max_cond_frames - 1):]}
            for t in [t for t in cond if t not in keep]:
                del cond[t]
    for per_frame in (*session.frames_tracked_per_obj.values(), *session.mask_inputs_per_obj.values(),
                      session.obj_id_to_tracker_score_frame_wise, session.suppressed_obj_ids):
        for t in [t for t in per_frame if isinstance(t, int) and t < horizon]:
            del per_frame[t]
    for lists in (session.unmatched_frame_inds, session.overlap_pair_to_frame_inds):
        for key in list(lists):
            lists[key] = [t for t in lists[key] if t >= horizon]


def _expand(value: Any, size: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value.expand(size, *value.shape[1:])
    if isinstance(value, (tuple, list)):
        return type(value)(_expand(v, size) for v in value)
    return value


class FastSam3VideoModel(Sam3VideoModel):
    """`Sam3VideoModel` with two speed knobs (`configure`):

    - `batched_prompts`: every text prompt is scored by the detector in one forward over the frame's features
      (the stock model runs one detector pass per prompt over the same features). Exact: the same detections.
    - `detect_every`: the detector runs on every N-th frame only; in between, the tracker carries the objects it
      has. A trade-off: an object that enters between detections is found at the next one (as Grounded-SAM-2's
      `step`), and the tracker's removal of unconfirmed tracks sees fewer confirmations.
    """

    batched_prompts = False
    detect_every = 1
    frame_number = 0

    def configure(self, batched_prompts: bool, detect_every: int) -> None:
        self.batched_prompts, self.detect_every = batched_prompts, max(1, int(detect_every))

    def _text(self, session, prompt_id: int):
        if prompt_id not in session.prompt_embeddings:
            session.prompt_embeddings[prompt_id] = self.detector_model.get_text_features(
                input_ids=session.prompt_input_ids[prompt_id],
                attention_mask=session.prompt_attention_masks[prompt_id], return_dict=True)
        return session.prompt_embeddings[prompt_id]

    def run_detection(self, inference_session, vision_embeds):
        prompt_ids = list(inference_session.prompts)
        if self.frame_number % self.detect_every:  # the tracker carries the objects on this frame
            empty = {"bbox": torch.zeros(0, 4), "mask": torch.zeros(0, 1, 1), "scores": torch.zeros(0)}
            device = vision_embeds.fpn_hidden_states[0].device
            return {pid: {k: v.to(device) for k, v in empty.items()} for pid in prompt_ids}
        if not self.batched_prompts or len(prompt_ids) < 2:
            return super().run_detection(inference_session, vision_embeds)
        texts = [self._text(inference_session, pid) for pid in prompt_ids]
        masks = [inference_session.prompt_attention_masks[pid] for pid in prompt_ids]
        width = max(m.shape[1] for m in masks)
        pooled = torch.cat([torch.nn.functional.pad(t.pooler_output, (0, 0, 0, width - t.pooler_output.shape[1]))
                            for t in texts])
        mask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1])) for m in masks])
        batch = len(prompt_ids)
        vision = type(vision_embeds)(**{k: _expand(v, batch) for k, v in vision_embeds.items()})
        text = copy.copy(texts[0])  # the detector reads the prompts' projected features, `pooler_output`
        text.pooler_output = pooled
        out = self.detector_model(vision_embeds=vision, text_embeds=text, attention_mask=mask)
        probs = out.pred_logits.sigmoid() * out.presence_logits.sigmoid()
        detections = {}
        for row, pid in enumerate(prompt_ids):  # from here on exactly what the stock loop does for one prompt
            prob = probs[row:row + 1]
            if self.det_nms_thresh > 0.0:
                keep = nms_masks(pred_probs=prob[0], pred_masks=out.pred_masks[row], iou_threshold=self.det_nms_thresh,
                                 prob_threshold=self.score_threshold_detection)
                prob[0][~keep] = 0.0
            hits = torch.where(prob > self.score_threshold_detection)
            detections[pid] = {"bbox": out.pred_boxes[row:row + 1][hits[0], hits[1]],
                               "mask": out.pred_masks[row:row + 1][hits[0], hits[1]],
                               "scores": prob[hits[0], hits[1]]}
        return detections


PROMPT_TOKENS = 32  # the length the processor pads a text prompt to


class Sam3Segmenter:
    """Loads SAM3 once; `track` runs text prompts over one video, frame by frame."""

    def __init__(self, cfg: Sam3Settings):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.processor = Sam3VideoProcessor.from_pretrained(cfg.model)
        config = Sam3VideoConfig.from_pretrained(cfg.model)
        if cfg.image_size:  # a reduced input size (SAM3 runs at 560 px as well as its 1008): faster, coarser
            self._resize(config, cfg.image_size)
        self.model = FastSam3VideoModel.from_pretrained(
            cfg.model, config=config, dtype=self.dtype,
            attn_implementation=cfg.attn_implementation).to(self.device).eval()
        self.model.configure(cfg.batched_prompts, cfg.detect_every)
        if cfg.compile_vision:
            self.model.detector_model.vision_encoder = torch.compile(self.model.detector_model.vision_encoder)
        tracker = self.model.config.tracker_config
        derived = max(tracker.num_maskmem, tracker.max_object_pointers_in_encoder, self.model.hotstart_delay,
                      self.model.recondition_every_nth_frame) + 1
        self.window = cfg.state_window or derived
        self.max_cond_frames = tracker.max_cond_frame_num
        self.model_id = cfg.model

    def _resize(self, config: Sam3VideoConfig, size: int) -> None:
        """The model's and the processor's input size (the config propagates it to detector and tracker)."""
        patch = config.detector_config.vision_config.backbone_config.patch_size
        config.image_size, config.low_res_mask_size = size, 4 * size // patch
        square = {"height": size, "width": size}
        self.processor.image_processor.size = square
        self.processor.image_processor.mask_size = {"height": 4 * size // patch, "width": 4 * size // patch}
        self.processor.video_processor.size = square
        self.processor.target_size = size

    def fit_prompt(self, prompt: str) -> str:
        """The prompt's longest word prefix the text encoder takes: `Sam3VideoProcessor.add_text_prompt` pads to
        PROMPT_TOKENS and does not truncate, so a longer prompt would stop the model."""
        words = prompt.split()
        while len(words) > 1 and len(self.processor.tokenizer(" ".join(words))["input_ids"]) > PROMPT_TOKENS:
            words.pop()
        return " ".join(words)

    @torch.inference_mode()
    def track(self, video_path: str, prompts: list[str], on_frame: FrameCallback) -> TrackResult:
        """Track every prompt through the video, handing each frame's masks to `on_frame` as they come."""
        info = probe(video_path)
        result = TrackResult(fps=info.fps / self.cfg.frame_stride, width=info.width, height=info.height)
        session = self.processor.init_video_session(inference_device=self.device, dtype=self.dtype)
        self.processor.add_text_prompt(session, prompts)
        bounded = self.cfg.bounded_memory
        expected = -(-info.num_frames // self.cfg.frame_stride)
        frames = iter_frames(video_path, self.cfg.frame_stride, self.cfg.max_frames)
        for index, frame in tqdm(frames, total=min(expected, self.cfg.max_frames or expected),
                                 desc=f"SAM3 {Path(video_path).name}", unit="frame"):
            started = time.perf_counter()
            inputs = self.processor(images=frame, return_tensors="pt")
            # an explicit index: the session would number a streamed frame by how many frames it holds,
            # which pruning keeps small
            self.model.frame_number = result.frames
            output = self.model(inference_session=session, frame_idx=result.frames,
                                frame=inputs.pixel_values[0].to(self.device, self.dtype))
            post = self.processor.postprocess_outputs(session, output, original_sizes=inputs.original_sizes)
            if bounded:
                prune_session(session, output.frame_idx, self.window, self.max_cond_frames)
            result.seconds_model += time.perf_counter() - started
            for prompt, ids in post["prompt_to_obj_ids"].items():
                for obj_id in ids:
                    result.prompt_of.setdefault(int(obj_id), prompt)
            masks = {int(i): m.cpu().numpy() for i, m in zip(post["object_ids"], post["masks"])}
            for obj_id in masks:
                result.frames_with[obj_id] = result.frames_with.get(obj_id, 0) + 1
            result.frames_with_any += bool(masks)
            result.state_bytes.append(session_bytes(session))
            on_frame(index, frame, masks, result)
            result.frames += 1
        log.info("SAM3 tracked %d prompts over %d frames of %s: %d objects, %.1f frames/s", len(prompts),
                 result.frames, video_path, len(result.prompt_of), result.frames / max(result.seconds_model, 1e-9))
        return result
