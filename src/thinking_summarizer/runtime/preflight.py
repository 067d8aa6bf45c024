"""Before any node runs: is every model the run will load reachable, and is the GPU there when conf asks for one?

A model is fine when it is a local folder, already in the Hugging Face cache, or the hub answers (and the
machine is not offline). Each problem is reported once, together, in seconds, instead of after the data nodes
and minutes of DNS retries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from thinking_summarizer.schemas.params import RunParams
from thinking_summarizer.schemas.params.shared import Preflight


def _get(params: RunParams, dotted: str) -> Any:
    """The value at a dotted conf key, None where a section on the way is switched off (null)."""
    value: Any = params
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def _hub_reachable(endpoint: str, timeout_s: float) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        httpx.head(endpoint, timeout=timeout_s)
        return True
    except httpx.HTTPError:
        return False


def models_needed(params: RunParams, reads: set[str], builds: set[str], cfg: Preflight) -> dict[str, str]:
    """conf key -> model name, for the models the run will load: those whose dataset (`preflight.models`) one of
    its nodes reads, unless the run builds it (its demo_data node is in the run and tiny_models has a recipe)."""
    needed = {}
    for dataset, rule in cfg.models.items():
        if dataset not in reads or (rule.when and _get(params, rule.when.key) not in rule.when.in_):
            continue
        if dataset in builds and _get(params, rule.tiny):
            continue
        if name := _get(params, rule.key):
            needed[rule.key] = str(name)
    return needed


def problems(params: RunParams, reads: set[str], builds: set[str], cfg: Preflight) -> list[str]:
    """Every reason the run would fail to load a model or find its GPU, each naming its conf key; `reads` and
    `builds`: the datasets the run's nodes read and write."""
    found = []
    hub: bool | None = None
    rules = {rule.key: rule for rule in cfg.models.values()}
    for key, name in models_needed(params, reads, builds, cfg).items():
        if Path(name).exists() or name.startswith("models:/") or _in_hf_cache(name):
            continue
        if hub is None:
            hub = _hub_reachable(cfg.hub_endpoint, cfg.hub_timeout_s)
        if not hub:
            rule = rules[key]
            built_by = (f" (the tiny one is built from {rule.tiny} by the {rule.built_by} pipeline: add it, "
                        f"e.g. `--pipelines {rule.built_by},...`, or run `make run` once)") \
                if _get(params, rule.tiny) else ""
            found.append(f"{key} = {name!r}: not a local folder, not in the Hugging Face cache, and the hub is not "
                         f"reachable (offline machine?): download it first, or point the key at a local copy{built_by}")
    if cfg.require_cuda:
        import torch

        if not torch.cuda.is_available():
            found.append("preflight.require_cuda: this configuration runs on a GPU, but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use a GPU machine or drop --env gpu")
    return found
