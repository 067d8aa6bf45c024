"""`conf/gpu` as Kedro loads it (soft-merged over conf/base): every model id, knob and implementation it names is
one that the libraries accept, on a stock GPU machine without the optional `gpu` extra."""

import importlib.util

import torch
from kedro.config import OmegaConfigLoader
from transformers.training_args import OptimizerNames

from thinking_summarizer.runtime.torch_runtime import resolve_attention
from thinking_summarizer.schemas import override_errors, parameter_errors
from thinking_summarizer.settings import CONFIG_LOADER_ARGS

from .conftest import REPO


def gpu_params() -> dict:
    loader = OmegaConfigLoader(str(REPO / "conf"), env="gpu", **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def test_conf_gpu_names_the_real_models_and_valid_knobs():
    params = gpu_params()
    assert parameter_errors(params)[1] == []
    base = OmegaConfigLoader(str(REPO / "conf"), env="base", **CONFIG_LOADER_ARGS | {"default_run_env": "base"})
    assert override_errors(params, base["parameters"], params["parameter_check"]["open_mappings"]) == []
    thinking = params["thinking_generation"]
    assert (thinking["backend"], thinking["transformers"]["model"]) == ("transformers", "PhilipC/HumanOmniV2")
    assert params["lora_training"]["base_model"] == "Qwen/Qwen2.5-3B-Instruct"
    assert params["video_segmentation"]["sam3"]["model"] == "facebook/sam3"
    assert params["tiny_models"] == {"thinker": None, "sam3": None, "student": None}  # nothing is built
    assert params["lora_training"]["trainer"]["optim"] in {o.value for o in OptimizerNames}
    assert params["preflight"]["require_cuda"] is True
    # base knobs survive the soft merge
    assert params["lora_training"]["lora"]["r"] == 64 and params["thinking_generation"]["gates"]["max_chars"] == 6000


def test_attention_is_what_this_machine_has():
    attention = gpu_params()["thinking_generation"]["transformers"]["attn_implementation"]
    assert attention == "auto"
    flash = importlib.util.find_spec("flash_attn") is not None
    assert resolve_attention(attention, torch.device("cuda")) == ("flash_attention_2" if flash else "sdpa")
    assert resolve_attention(attention, torch.device("cpu")) == "sdpa"
