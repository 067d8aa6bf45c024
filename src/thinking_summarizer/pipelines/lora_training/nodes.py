"""Fine-tune the student with LoRA (trl + peft) and register the adapter; what MLflow gets is returned as a
tracking record (the TrackingHook's training child run is active meanwhile)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
import yaml
from datasets import Dataset
from transformers import EarlyStoppingCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTTrainer

from thinking_summarizer.io.hashing import content_hash
from thinking_summarizer.reporting.plots import loss_curve
from thinking_summarizer.reporting.run_summary import pct
from thinking_summarizer.runtime.torch_runtime import peak_memory_mb, reset_peak_memory
from thinking_summarizer.schemas import LoggedInput, Row, TrackingRecord
from thinking_summarizer.schemas.params.training import LoraTraining, Trainer
from thinking_summarizer.io.model_datasets import TrainedAdapter
from thinking_summarizer.student import CARD, base_config
from thinking_summarizer.student.training import MlflowLogging, StopOnNonFiniteLoss, build_trainer

log = logging.getLogger(__name__)


def prepare_base_model(tiny_student: Row, cfg: LoraTraining) -> Row:
    """The base to fine-tune, as configured; when it is the tiny one demo_data built (`tiny_student` names it),
    with the trainer knobs its recipe changes."""
    name = cfg.base_model
    recipe = tiny_student.get("recipe") if tiny_student.get("model") == name else None
    config = base_config(name)
    return {"base_model": name, "model_type": config.model_type, "tiny": recipe is not None,
            "trainer": (recipe or {}).get("trainer") or {},
            "fingerprint": content_hash({"name": name, "recipe": recipe, "config": config.to_dict()})}


def trainer_settings(cfg: LoraTraining, base: Row) -> Row:
    """The design's trainer knobs, with the tiny base's CPU overrides when it is the one trained; the merged recipe
    is checked as a whole (the overrides' values too), and handed on as written."""
    settings = cfg.trainer.model_dump() | base.get("trainer", {})
    Trainer.model_validate(settings)
    return settings


def _save(trainer: SFTTrainer, tokenizer, output_dir: Path, config: Row) -> Path:
    """Save the best adapter with its tokenizer and card, the training config and the loss curve."""
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))  # the best checkpoint: load_best_model_at_end
    tokenizer.save_pretrained(str(adapter_dir))
    card = {"base_model": config["base"]["base_model"], "instruction": config["instruction"],
            "grammar": config["grammar"]}
    (adapter_dir / CARD).write_text(json.dumps(card, indent=1))
    (output_dir / "training_config.yml").write_text(yaml.safe_dump(config))
    loss_curve(trainer.state.log_history, output_dir / "loss_curve.png")
    return adapter_dir


def _with_summary(result: Row) -> Row:
    """The result with its line for the run summary (also for a training finished before this run)."""
    m = result["metrics"]
    return result | {"summary": f"lora_training: {m['steps']} steps, best val loss {m['best_eval_loss']:.4f}, "
                                f"{m['tokens_per_second']:.0f} tokens/s, {m['trainable_parameters']:,} trainable "
                                f"parameters ({pct(m['trainable_fraction'])}); adapter {result['adapter_dir']}"}


def _record(result: Row, data: Row, train_chat: Dataset, val_chat: Dataset) -> TrackingRecord:
    """What the training child run gets: the final numbers, the adapter and its config, the two splits."""
    output_dir = Path(result["adapter_dir"]).parent
    return TrackingRecord(
        metrics=result["metrics"],
        tags={"training_id": result["training_id"], "run_key": result["run_key"], "base_model": result["base_model"],
              "resumed_from_step": str(result["resumed_from_step"])},
        local={"adapter": result["adapter_dir"], "training_config.yml": str(output_dir / "training_config.yml"),
               "loss_curve.png": str(output_dir / "loss_curve.png")},
        inputs=[LoggedInput(name=f"{split}_chat", context=context, digest=data[f"{split}_sha"], rows=rows.to_list())
                for split, context, rows in (("train", "training", train_chat), ("val", "validation", val_chat))])


def _run_dir(root: Path, run_key: str, retrain: bool) -> Path:
    """The folder of this config and data: its newest attempt (to resume or reuse), or with `retrain` a new one
    (`<run_key>-2`, ...) beside the earlier ones, which stay intact for the results that point at them."""
    attempts = sorted((p for p in root.glob(f"{run_key}*") if p.name == run_key or
                       p.name.removeprefix(f"{run_key}-").isdigit()),
                      key=lambda p: int(p.name.removeprefix(f"{run_key}-")) if p.name != run_key else 1)
    if attempts and not retrain:
        return attempts[-1]
    return root / (run_key if not attempts else f"{run_key}-{len(attempts) + 1}")


def train_student(train_chat: Dataset, val_chat: Dataset, base: Row, cfg: LoraTraining,
                  instruction: str, grammar: str) -> tuple[Row, TrackingRecord, str]:
    """Run the recipe's trainer (`student.training.build_trainer`) with resume: an identical finished training is
    reused (its record says so), an unfinished one resumes from its last checkpoint. Per-step losses go to the
    active MLflow run as they come; the result, its tracking record and the adapter's folder (`student_adapter`)
    are returned. The adapter's card carries the instruction and the format grammar (`summary_grammar`) its
    decoder is held to."""
    if len(train_chat) == 0:
        raise ValueError("lora_training: the train split is empty; nothing to train on")
    settings = trainer_settings(cfg, base)
    data = {"train_sha": content_hash(list(train_chat["messages"])), "val_sha": content_hash(list(val_chat["messages"])),
            "train_rows": len(train_chat), "val_rows": len(val_chat)}
    run_key = content_hash({"lora": cfg.lora, "trainer": settings, "base": base["fingerprint"], "data": data,
                           "instruction": instruction})
    output_dir = _run_dir(Path(cfg.output_dir), run_key, cfg.retrain)
    done = output_dir / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        log.info("Training %s already finished for this config and data; reusing its adapter", output_dir.name)
        card_file = Path(result["adapter_dir"]) / CARD  # the grammar is no part of training: today's goes with it
        card = json.loads(card_file.read_text())
        if card.get("grammar") != grammar:
            card_file.write_text(json.dumps(card | {"grammar": grammar}, indent=1))
        return (_with_summary(result), TrackingRecord(tags={"training_id": result["training_id"], "reused": "true"}),
                result["adapter_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    built = build_trainer(train_chat, val_chat, base["base_model"], cfg.lora, settings, output_dir, cfg.device)
    trainer, device = built.trainer, built.device
    logger = MlflowLogging()
    for callback in (logger, StopOnNonFiniteLoss(),
                     EarlyStoppingCallback(early_stopping_patience=settings["early_stopping_patience"])):
        trainer.add_callback(callback)
    checkpoint = get_last_checkpoint(str(output_dir))
    if checkpoint:
        log.info("Resuming training %s from %s", output_dir.name, checkpoint)
    reset_peak_memory(device)
    trainer.train(resume_from_checkpoint=checkpoint)
    state = trainer.state
    metrics = {
        "trainable_parameters": built.trainable, "trainable_fraction": built.trainable / built.total,
        **logger.throughput(state), "peak_memory_mb": peak_memory_mb(device),
        "best_eval_loss": state.best_metric or float("nan"), "epochs_completed": state.epoch or 0.0,
        "steps": state.global_step, **built.counts,
    }
    adapter_dir = _save(trainer, built.tokenizer, output_dir, {
        "base": base, "lora": cfg.lora.model_dump(), "trainer": settings, "data": data, "instruction": instruction,
        "grammar": grammar})
    result = {"training_id": output_dir.name, "run_key": run_key, "adapter_dir": str(adapter_dir),
              "base_model": base["base_model"], "resumed_from_step": int(metrics["first_step"]),
              "best_checkpoint": state.best_model_checkpoint, "metrics": metrics, "loss_history": state.log_history}
    done.write_text(json.dumps(result, indent=1))
    log.info("Trained %s: %d steps, best eval loss %.4f, %.0f tokens/s, peak memory %.0f MB", output_dir.name,
             state.global_step, metrics["best_eval_loss"], metrics["tokens_per_second"], metrics["peak_memory_mb"])
    return _with_summary(result), _record(result, data, train_chat, val_chat), result["adapter_dir"]


def release_student(training: Row, adapter: TrainedAdapter, cfg: LoraTraining) -> Row:
    """What the registry is to hold for this training: the `adapter` as a new model version, described and tagged
    with its training; with `verify_reload`, only a version that reloads to the trained logits gets the aliases.
    Saving it to `registered_student` (a `RegisteredStudentDataset`) registers it."""
    metrics, registry_cfg, card = training["metrics"], cfg.registry, adapter.card
    description = (f"LoRA adapter on {training['base_model']}: {metrics['steps']} steps, best val loss "
                   f"{metrics['best_eval_loss']:.4f}, training {training['training_id']}.")
    tags = {"base_model": training["base_model"], "instruction": card["instruction"], "grammar": card.get("grammar", ""),
            "run_key": training["run_key"], "training_id": training["training_id"],
            "best_eval_loss": f"{metrics['best_eval_loss']:.4f}", "steps": metrics["steps"]}
    verify = registry_cfg.model_dump() if registry_cfg.verify_reload else None
    return {"adapter_dir": adapter.path, "base_model": training["base_model"],
            "name": registry_cfg.name, "aliases": registry_cfg.aliases, "serving": registry_cfg.serving.model_dump(),
            "description": description, "tags": tags, "verify": verify}
