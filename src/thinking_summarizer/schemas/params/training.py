"""`lora_training`: the base model, the LoRA, trl's SFT recipe and the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinking_summarizer.schemas.params.base import Section


class Lora(Section):
    r: int = Field(ge=1)
    alpha: int = Field(ge=1)  # peft's lora_alpha
    dropout: float = Field(ge=0, lt=1)
    target_modules: list[str] = Field(min_length=1)


class Trainer(Section):
    """trl's `SFTConfig` fields as conf sets them (see `student.training.sft_config`), plus `precision` and
    `early_stopping_patience`, which the project reads itself."""

    learning_rate: float = Field(gt=0)
    lr_scheduler_type: str
    warmup_steps: float = Field(ge=0)
    num_train_epochs: float = Field(gt=0)
    per_device_train_batch_size: int = Field(ge=1)
    per_device_eval_batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(ge=1)
    optim: str
    weight_decay: float = Field(ge=0)
    max_grad_norm: float = Field(gt=0)
    precision: Literal["auto", "bf16", "fp32"]
    gradient_checkpointing: bool
    max_length: int = Field(ge=16)
    train_sampling_strategy: str
    padding_free: bool | Literal["auto"]
    use_liger_kernel: bool | Literal["auto"]
    logging_steps: int = Field(ge=1)
    eval_strategy: Literal["epoch", "steps"]
    eval_steps: int | None = Field(default=None, ge=1)
    save_total_limit: int = Field(ge=1)
    early_stopping_patience: int = Field(ge=1)
    seed: int


class Serving(Section):
    batch_size: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)


class Registry(Section):
    """Where the trained adapter is registered, and how its reload is checked."""

    name: str = Field(min_length=1)
    aliases: list[str]
    verify_reload: bool
    probe_text: str = Field(min_length=1)
    logit_tolerance: float = Field(gt=0)
    serving: Serving


class LoraTraining(Section):
    base_model: str = Field(min_length=1)
    device: str
    lora: Lora
    trainer: Trainer
    output_dir: str
    retrain: bool
    registry: Registry
