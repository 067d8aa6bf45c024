"""The student in the MLflow model registry, as a pyfunc model whose artifacts are the adapter (with its
tokenizer and card) and, for a base that only exists on this disk, the base weights.

A plain `mlflow.transformers.log_model(peft_model)` of a local base reloads with the LoRA weights
re-initialised at random (mlflow issue 23761); this form reloads exactly, and `register` proves it by
comparing logits before it returns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from importlib import metadata

import mlflow
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from thinking_summarizer.io.datasets import JSONDataset
from thinking_summarizer.student import Student, from_adapter

log = logging.getLogger(__name__)
# how the model loads, overridable per load (`load_model(uri, model_config={...})`)
MODEL_CONFIG = {"merge": False, "device": "auto", "dtype": "auto"}
# what the pyfunc imports when loaded where the project is not installed (the package travels as code)
REQUIREMENTS = ("torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "mlflow", "pandas",
                "numpy", "pydantic", "xgrammar")
PACKAGE = Path(__file__).resolve().parents[1]
EXAMPLE = ["The woman in a red coat on the left frowns; her voice is sharp. So the answer is angry."]


class StudentSummarizerModel(mlflow.pyfunc.PythonModel):
    """`predict` takes a list of thinking texts and returns their summaries."""

    def load_context(self, context) -> None:
        config = MODEL_CONFIG | (context.model_config or {})
        self.student = from_adapter(context.artifacts["adapter"], base_dir=context.artifacts.get("base"),
                                    merge=bool(config["merge"]), device=config["device"], dtype=config["dtype"])

    # no type hints here: MLflow would derive a signature from them and drop the declared params
    def predict(self, context, model_input, params=None):
        # MLflow fills every param the signature declares (its default: conf's `registry.serving`)
        # the signature makes MLflow hand over a one-column DataFrame
        thinkings = model_input.iloc[:, 0].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
        return self.student.summarize([str(t) for t in thinkings], int(params["batch_size"]),
                                      int(params["max_new_tokens"])).texts


VERIFIED = "reload_max_logit_difference"  # version tag: the version was reloaded and reproduced the trained logits


def verify_reload(adapter_dir: str | Path, uri: str, probe: str, tolerance: float) -> float:
    """The largest logit difference between the trained adapter and the version behind `uri` on `probe`;
    raises when it exceeds `tolerance`."""
    trained = from_adapter(adapter_dir).logits(probe)
    reloaded = load_registered(uri).logits(probe)
    diff = float((trained - reloaded).abs().max())
    if not torch.allclose(trained, reloaded, atol=tolerance):
        raise RuntimeError(f"{uri} does not reproduce the trained model (max logit difference {diff:.3g}); "
                           "refusing to hand it on")
    log.info("Registry check: %s reproduces the trained logits (max difference %.2g)", uri, diff)
    return diff


def register(adapter_dir: str | Path, base_model: str, name: str, aliases: list[str], serving: dict[str, int],
             description: str = "", tags: dict[str, str] | None = None,
             verify: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log the student to the active MLflow run (the training stage's) and register it as a new version of
    `name`, with a description and tags; `serving` are predict()'s default generation params (declared in the
    signature, so a caller may override each). With `verify` (`probe_text`, `logit_tolerance`) the version must
    reload to the trained logits before `aliases` point at it, and carries the `VERIFIED` tag after.

    An adapter already registered (same `training_id` tag: a rerun that reused a finished training) keeps its
    version, and a verified one is not loaded again. The model carries the project's code and pinned
    requirements, so it loads and serves where the project is not installed."""
    client, tags = MlflowClient(), {k: str(v) for k, v in (tags or {}).items()}
    training_id = tags.get("training_id")
    earlier = [v for v in client.search_model_versions(f"name='{name}'")
               if training_id and v.tags.get("training_id") == training_id]
    if earlier:
        found = max(earlier, key=lambda v: int(v.version))
        version, run_id, verified = str(found.version), found.run_id, found.tags.get(VERIFIED)
        log.info("%s version %s already holds the adapter of training %s", name, version, training_id)
    else:
        artifacts = {"adapter": str(adapter_dir)}
        if Path(base_model).is_dir():  # a hub id is reproducible by name; a local base must travel with the model
            artifacts["base"] = base_model
        info = mlflow.pyfunc.log_model(
            name="student", python_model=StudentSummarizerModel(), artifacts=artifacts,
            model_config=MODEL_CONFIG, registered_model_name=name,
            signature=infer_signature(["a thinking"], ["a summary"], params=serving), input_example=(
                EXAMPLE, {"max_new_tokens": 16}), code_paths=[str(PACKAGE)],
            pip_requirements=[f"{pkg}=={metadata.version(pkg)}" for pkg in REQUIREMENTS],
        )
        version, run_id, verified = str(info.registered_model_version), info.run_id, None
        if description:
            client.update_model_version(name, version, description=description)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        log.info("Registered %s version %s from run %s", name, version, run_id)
    uri = f"models:/{name}/{version}"
    registered = {"summary": f"registry: {uri} (MLflow run {run_id})", "name": name, "version": version,
                  "model_uri": uri, "run_id": run_id,
                  "bundled_base": Path(base_model).is_dir()}
    if verify:
        if verified is None:
            verified = f"{verify_reload(adapter_dir, uri, verify['probe_text'], verify['logit_tolerance']):.3g}"
            client.set_model_version_tag(name, version, VERIFIED, verified)
        registered["max_logit_difference"] = float(verified)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return registered


def version_by_alias(name: str, alias: str) -> str | None:
    """The version `name@alias` points at, or None when the alias (or the model) does not exist yet."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_registered(uri: str, merge: bool = False, device: str = "auto", dtype: str = "auto") -> Student:
    """The student behind a registry URI (`models:/name/3` or `models:/name@champion`)."""
    model = mlflow.pyfunc.load_model(uri, model_config={"merge": merge, "device": device, "dtype": dtype})
    return model.unwrap_python_model().student


class RegisteredStudentDataset(JSONDataset):
    """The student in the MLflow model registry, the way kedro-mlflow's model datasets do it: saving a release
    (`register`'s arguments, as lora_training's `release_student` returns them) logs the pyfunc to the active run
    and registers it; loading gives the registered version's pointer (`name`, `version`, `model_uri`, ...), which
    the save wrote beside it as versioned JSON."""

    def save(self, data: dict[str, Any]) -> None:
        super().save(register(**data))
