"""Project settings: configuration loading and hooks."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
# `soft`: an environment such as conf/gpu overrides single keys, not whole top-level sections
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local",
                      "merge_strategy": {"parameters": "soft", "catalog": "soft"}}

from thinking_summarizer.hooks import CredentialsHook, ParametersHook, RunSummaryHook  # noqa: E402
from thinking_summarizer.tracking.hook import TrackingHook  # noqa: E402

PARAMETERS = ParametersHook()  # first of all: the others read the parameters it read and checked
TRACKING = TrackingHook(PARAMETERS)
HOOKS = (PARAMETERS, CredentialsHook(PARAMETERS), TRACKING, RunSummaryHook(TRACKING))
