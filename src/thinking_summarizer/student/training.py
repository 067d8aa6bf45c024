"""What training around trl's SFTTrainer needs: examples fitted to the max length (never silently),
and callbacks that log to MLflow and stop on a NaN loss."""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import ProgressCallback
from trl import SFTConfig, SFTTrainer

from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.training import Lora

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class LengthFit:
    messages: list[list[dict[str, str]]]
    truncated: int
    dropped: int


def fit_to_length(conversations: list[list[dict[str, str]]], tokenizer: PreTrainedTokenizerBase,
                  max_length: int) -> LengthFit:
    """Cut the thinking (the user turn) of conversations longer than `max_length` tokens so that the
    summary, which carries the loss, stays whole; drop those whose summary alone does not fit."""
    kept, truncated, dropped = [], 0, 0
    for messages in conversations:
        length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if length <= max_length:
            kept.append(messages)
            continue
        user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        ids = tokenizer(messages[user]["content"], add_special_tokens=False)["input_ids"]
        keep = len(ids) - (length - max_length) - 2  # a margin for tokens merging across the cut
        if keep <= 0:
            dropped += 1
            continue
        cut = [dict(m) for m in messages]
        cut[user]["content"] = tokenizer.decode(ids[:keep])
        kept.append(cut)
        truncated += 1
    return LengthFit(kept, truncated, dropped)


class MlflowLogging(TrainerCallback):
    """Train loss, learning rate and grad norm per logging step, eval loss per evaluation, into the active MLflow
    run (the TrackingHook's training stage; none outside `kedro run`, or where MLflow is not installed); and
    the throughput of this session (a resumed training counts only what it trained itself)."""

    def __init__(self) -> None:
        self.start: tuple[float, int, int] = (0.0, 0, 0)
        try:  # here, not at import: a bare GPU box runs the recipe and trainer without MLflow
            import mlflow
        except ImportError:
            mlflow = None
        self.mlflow = mlflow

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.start = (time.perf_counter(), state.num_input_tokens_seen, state.global_step)

    def throughput(self, state) -> dict[str, float]:
        seconds = time.perf_counter() - self.start[0]
        steps = max(1, state.global_step - self.start[2])
        return {"tokens_per_second": (state.num_input_tokens_seen - self.start[1]) / seconds,
                "seconds_per_step": seconds / steps, "first_step": self.start[2]}

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs) -> None:
        names = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm",
                 "eval_loss": "eval_loss"}
        metrics = {names[k]: float(v) for k, v in (logs or {}).items() if k in names}
        if metrics and self.mlflow is not None and self.mlflow.active_run() is not None:
            self.mlflow.log_metrics(metrics, step=state.global_step)


class TrainingProgress(TrainerCallback):
    """One labelled bar over the training steps, with the latest train and val loss; it replaces the trainer's
    own bar, which prints every logged dict as a raw line (the numbers are in MLflow and the run's record)."""

    def __init__(self, label: str):
        self.label, self.bar, self.losses = label, None, {}

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.label, unit="step")

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs) -> None:
        self.losses |= {name: f"{(logs or {})[key]:.3f}" for key, name in (("loss", "loss"), ("eval_loss", "val"))
                        if key in (logs or {})}
        if self.bar is not None and self.losses:
            self.bar.set_postfix(self.losses, refresh=False)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StopOnNonFiniteLoss(TrainerCallback):
    """Raise as soon as a logged loss is NaN or infinite, naming the step."""

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs) -> None:
        for key in ("loss", "eval_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise TrainingDivergedError(
                    f"{key} is {value} at step {state.global_step} (epoch {state.epoch:.2f}): training stopped; "
                    f"lower lora_training.trainer.learning_rate or check the data")


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


# read by the project, not fields of SFTConfig: `precision` (auto: bf16 on a GPU) and the early-stopping patience
OWN_KNOBS = ("precision", "early_stopping_patience")
# what the recipe needs whatever the conf says: loss on the assistant turns only, checkpoints at evaluations with
# the best loaded at the end, the project's own progress bar and tracking
FIXED = {"fp16": False, "packing": False, "assistant_only_loss": True, "load_best_model_at_end": True,
         "metric_for_best_model": "eval_loss", "greater_is_better": False, "logging_first_step": True,
         "report_to": "none", "include_num_input_tokens_seen": "non_padding", "dataloader_num_workers": 0,
         "disable_tqdm": False}


def sft_config(settings: Row, output_dir: Path, bf16: bool) -> SFTConfig:
    """The training recipe as trl's SFTConfig, built from `lora_training.trainer` the way trl's scripts build it from
    YAML: every key there is an SFTConfig field (but OWN_KNOBS), so a key SFTConfig lacks fails here by name.
    `auto` for padding_free (needs FlashAttention) and use_liger_kernel means: where installed."""
    knobs = {key: value for key, value in settings.items() if key not in OWN_KNOBS}
    for key, package in (("padding_free", "flash_attn"), ("use_liger_kernel", "liger_kernel")):
        knobs[key] = _installed(package) if knobs.get(key) == "auto" else bool(knobs.get(key))
    return SFTConfig(
        output_dir=str(output_dir), data_seed=knobs["seed"], bf16=bf16,
        save_strategy=knobs["eval_strategy"], save_steps=knobs.get("eval_steps"),
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning without a GPU only warns, every epoch
        **FIXED, **knobs,
    )


def _fit(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, split: str) -> tuple[Dataset, dict[str, int]]:
    fitted = fit_to_length(list(dataset["messages"]), tokenizer, max_length)
    if fitted.truncated or fitted.dropped:
        log.warning("%s: %d of %d examples longer than max_length=%d tokens had their thinking truncated; "
                    "%d dropped (the summary alone is too long)", split, fitted.truncated, len(dataset),
                    max_length, fitted.dropped)
    if not fitted.messages:
        raise ValueError(f"the {split} split is empty after fitting to max_length={max_length}")
    return Dataset.from_dict({"messages": fitted.messages}), {f"{split}_truncated": fitted.truncated,
                                                             f"{split}_dropped": fitted.dropped}


@dataclass
class BuiltTrainer:
    trainer: SFTTrainer
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    counts: dict[str, int]  # per split: examples whose thinking was cut, and dropped, to fit max_length
    trainable: int
    total: int


def build_trainer(train_chat: Dataset, val_chat: Dataset, base_model: str, lora: Lora, settings: Row, output_dir: Path, device_name: str) -> BuiltTrainer:
    """trl's SFTTrainer for the recipe: the base in the precision it trains in, LoRA on the configured modules,
    both splits fitted to `max_length`."""
    from peft import LoraConfig

    from thinking_summarizer.student import load_base
    from thinking_summarizer.runtime.torch_runtime import resolve_device

    device = resolve_device(device_name)
    bf16 = settings["precision"] == "bf16" or (settings["precision"] == "auto" and device.type == "cuda")
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    train_set, counts = _fit(train_chat, tokenizer, settings["max_length"], "train")
    val_set, val_counts = _fit(val_chat, tokenizer, settings["max_length"], "val")
    trainer = SFTTrainer(
        model=load_base(base_model, device_name, "bfloat16" if bf16 else "float32"),
        args=sft_config(settings, output_dir, bf16), train_dataset=train_set, eval_dataset=val_set,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                               target_modules=lora.target_modules, bias="none", task_type="CAUSAL_LM"),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TrainingProgress(f"training {Path(base_model).name} + LoRA r{lora.r}"))
    trainable, total = trainer.model.get_nb_trainable_parameters()
    log.info("LoRA r=%d alpha=%d on %s of %s: %s trainable of %s parameters (%.2f%%)", lora.r, lora.alpha,
             lora.target_modules, base_model, f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return BuiltTrainer(trainer, tokenizer, device, counts | val_counts, trainable, total)
