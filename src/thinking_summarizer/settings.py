"""Project settings: configuration loading and hooks."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
# `soft`: an environment such as conf/gpu overrides single keys, not whole top-level sections
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local",
                      "merge_strategy": {"parameters": "soft", "catalog": "soft"}}
# MLflow is driven by the project's own TrackingHook and nodes, not by the kedro-mlflow plugin
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)

from thinking_summarizer.hooks import (  # noqa: E402
    CredentialsHook, ParameterCheckHook, RunSummaryHook, TrackingHook,
)

HOOKS = (ParameterCheckHook(), CredentialsHook(), TrackingHook(), RunSummaryHook())
