"""`video_segmentation`: which videos, which summarizer, SAM3, and how the masked MP4 is drawn and encoded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinking_summarizer.schemas.params.base import Section


class UngroundedPrompts(Section):
    articles: list[str]
    cut_at: list[str]


class Render(Section):
    alpha: float = Field(ge=0, le=1)
    min_height: int = Field(ge=16)
    label_height: float = Field(gt=0, lt=1)


class Encoder(Section):
    crf: int = Field(ge=0, le=51)
    preset: str


class Sam3Settings(Section):
    model: str
    device: str
    attn_implementation: str
    batched_prompts: bool
    detect_every: int = Field(ge=1)
    compile_vision: bool
    image_size: int | None = Field(default=None, ge=14)
    dtype: str
    frame_stride: int = Field(ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    bounded_memory: bool
    state_window: int | None = Field(default=None, ge=1)


class VideoSegmentation(Section):
    demo_config: str | None = None
    from_val_split: int = Field(ge=0)
    summarizer: Literal["student", "teacher"]
    student: str | None = None
    batch_size: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    max_prompts: int = Field(ge=1)
    ungrounded_prompts: UngroundedPrompts | None = None
    render: Render
    encoder: Encoder
    staging_dir: str
    sam3: Sam3Settings
