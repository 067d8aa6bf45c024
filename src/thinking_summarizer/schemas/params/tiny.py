"""`tiny_models`: the recipes of the small random models the default run and the tests build offline with the same
classes as the real ones. conf/gpu sets each to null: real models are loaded instead."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from thinking_summarizer.schemas.params.base import Section
from thinking_summarizer.schemas.params.training import Trainer


class TextSize(Section):
    hidden_size: int = Field(ge=8)
    layers: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    intermediate_size: int | None = Field(default=None, ge=1)  # None: twice the hidden size


class VisionSize(Section):
    depth: int = Field(ge=1)
    hidden_size: int = Field(ge=8)
    heads: int = Field(ge=1)
    intermediate_size: int | None = Field(default=None, ge=1)
    full_attention_blocks: list[int] | None = None  # None: the last block


class AudioSize(Section):
    d_model: int = Field(ge=8)
    layers: int = Field(ge=1)
    heads: int = Field(ge=1)
    num_mel_bins: int = Field(ge=1)
    chunk_seconds: int = Field(ge=1)
    ffn_dim: int | None = Field(default=None, ge=1)


class TinyThinker(Section):
    seed: int
    vocab_size: int = Field(ge=300)
    min_pixels: int = Field(ge=1)
    max_pixels: int = Field(ge=1)
    text: TextSize
    vision: VisionSize
    audio: AudioSize


class Sam3Thresholds(Section):
    score_threshold_detection: float
    new_det_thresh: float
    max_num_objects: int = Field(ge=1)
    hotstart_delay: int = Field(ge=0)


class TinySam3(Section):
    seed: int
    image_size: int = Field(ge=28)
    hidden_size: int = Field(gt=64, multiple_of=64)
    backbone_hidden_size: int = Field(ge=8)
    backbone_layers: int = Field(ge=1)
    num_queries: int = Field(ge=1)
    vocab_size: int = Field(ge=100)
    thresholds: Sam3Thresholds
    object_score_bias: float
    prompt_texts: list[str] = Field(min_length=1)


class StudentSize(Section):
    hidden_size: int = Field(ge=8)
    layers: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    max_positions: int = Field(ge=64)
    rope_theta: float = Field(gt=0)
    tie_embeddings: bool


class CopyCircuit(Section):
    previous_token_strength: float
    match_strength: float
    copy_gain: float
    low_frequency: float
    embedding_std: float = Field(gt=0)
    second_token: float


class Pretrain(Section):
    steps: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    seed: int
    vocabulary: int = Field(ge=1)
    repeat_words: tuple[int, int]
    tasks: dict[str, float]
    loss_on: Literal["answer", "all"]


class TinyStudent(Section):
    seed: int
    vocab_size: int = Field(ge=300)
    model: StudentSize
    copy_circuit: CopyCircuit | None = None
    pretrain: Pretrain
    trainer: dict[str, Any] = Field(default_factory=dict)  # laid over lora_training.trainer: a tiny model learns slower

    @field_validator("trainer")
    @classmethod
    def _trainer_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if unknown := sorted(set(value) - set(Trainer.model_fields)):
            raise ValueError(f"{', '.join(unknown)}: not keys of lora_training.trainer")
        return value


class TinyModels(Section):
    thinker: TinyThinker | None = None
    sam3: TinySam3 | None = None
    student: TinyStudent | None = None
