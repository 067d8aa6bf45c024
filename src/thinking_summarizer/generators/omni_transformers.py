"""HumanOmniV2 in-process through transformers: `Qwen2_5OmniThinkerForConditionalGeneration` and its
processor, video frames plus the video's own audio track, batched generation with left padding."""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import Qwen2_5OmniProcessor, Qwen2_5OmniThinkerForConditionalGeneration

from thinking_summarizer.generators import Generation, user_text
from thinking_summarizer.io.media import MediaError, read_audio, read_frames
from thinking_summarizer.runtime.torch_runtime import resolve_attention, resolve_device, resolve_dtype
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy
from thinking_summarizer.schemas.params.thinking import GenerationSettings, InProcessThinker, ThinkingGeneration, ThinkingPrompt

log = logging.getLogger(__name__)


def load_omni(cfg: InProcessThinker):
    """(processor, model) from `cfg.model` (a hub id or a folder: demo_data's tiny one on the CPU default)."""
    device = resolve_device(cfg.device)
    processor = Qwen2_5OmniProcessor.from_pretrained(cfg.model)
    processor.tokenizer.padding_side = "left"
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        cfg.model, dtype=resolve_dtype(cfg.dtype, device), attn_implementation=resolve_attention(cfg.attn_implementation, device))
    return processor, model.to(device).eval()


class OmniTransformersGenerator:
    """Greedy by default; every generation knob comes from config."""

    @classmethod
    def from_config(cls, cfg: ThinkingGeneration, client: ClientPolicy) -> OmniTransformersGenerator:
        return cls(cfg.transformers, cfg.prompt, cfg.generation)

    def __init__(self, cfg: InProcessThinker, prompt: ThinkingPrompt, generation: GenerationSettings):
        self.cfg, self.prompt, self.generation = cfg, prompt, generation
        self.model_id = cfg.model
        self.processor, self.model = load_omni(cfg)

    def _media(self, sample: Row) -> tuple[Any, Any]:
        video = self.cfg.video
        frames = read_frames(sample["video_path"], video.fps, video.max_frames)
        audio = None
        if self.cfg.audio.use:
            audio = read_audio(sample["video_path"], self.processor.feature_extractor.sampling_rate,
                               self.cfg.audio.max_seconds)
        return frames, audio

    def messages(self, sample: Row, with_audio: bool) -> list[dict[str, Any]]:
        """HumanOmniV2's conversation: its system prompt, then the video and the question."""
        return [
            {"role": "system", "content": [{"type": "text", "text": self.prompt.system}]},
            {"role": "user", "content": [{"type": "video"},
                                         {"type": "text", "text": user_text(sample, self.prompt, with_audio)}]},
        ]

    def prepare(self, samples: list[Row], media: list[tuple[Any, Any]]):
        """Processor inputs for one batch: chat text, video frames, and the audio of videos that have it."""
        texts = [self.processor.apply_chat_template(self.messages(s, audio is not None), tokenize=False,
                                                    add_generation_prompt=True) for s, (_, audio) in zip(samples, media)]
        with_audio = [i for i, (_, audio) in enumerate(media) if audio is not None]
        video = self.cfg.video
        kwargs: dict[str, Any] = {
            "videos_kwargs": {"fps": video.fps, "cap_pixels_per_frame": True,
                              "size": {"shortest_edge": video.min_pixels, "longest_edge": video.max_pixels}},
        }
        if with_audio:
            longest = max(media[i][1].size for i in with_audio)
            kwargs |= {"audio": [media[i][1] for i in with_audio], "audio_from_video_indices": with_audio,
                       "load_audio_from_video": True, "audio_kwargs": {"max_length": longest}}
        return self.processor(text=texts, videos=[frames for frames, _ in media], padding=True,
                              return_tensors="pt", **kwargs)

    @torch.inference_mode()
    def _generate_batch(self, samples: list[Row], media: list[tuple[Any, Any]]) -> list[Generation]:
        inputs = self.prepare(samples, media).to(self.model.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.model.dtype)
        gen = self.generation
        sampling = gen.temperature > 0
        output = self.model.generate(
            **inputs, max_new_tokens=gen.max_new_tokens, do_sample=sampling,
            temperature=gen.temperature if sampling else None, top_p=gen.top_p if sampling else None)
        new = output[:, inputs["input_ids"].shape[1]:]
        pad = self.processor.tokenizer.pad_token_id
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        return [Generation(s["sample_id"], text, int((row != pad).sum()))
                for s, text, row in zip(samples, texts, new)]

    def generate(self, samples: list[Row]) -> list[Generation]:
        results: dict[str, Generation] = {}
        ready = []
        for sample in samples:
            try:
                ready.append((sample, self._media(sample)))
            except MediaError as err:
                results[sample["sample_id"]] = Generation(sample["sample_id"], error=f"unreadable_video: {err}")
        size = self.cfg.batch_size
        for start in range(0, len(ready), size):
            batch = ready[start:start + size]
            try:
                done = self._generate_batch([s for s, _ in batch], [m for _, m in batch])
            except (RuntimeError, ValueError) as err:
                log.warning("Batch of %d failed (%s); generating its samples one by one", len(batch), err)
                done = [self._one(sample, media) for sample, media in batch]
            results |= {g.sample_id: g for g in done}
        return [results[s["sample_id"]] for s in samples]

    def _one(self, sample: Row, media: tuple[Any, Any]) -> Generation:
        try:
            return self._generate_batch([sample], [media])[0]
        except (RuntimeError, ValueError) as err:
            return Generation(sample["sample_id"], error=f"generation_error: {type(err).__name__}: {str(err)[:200]}")
