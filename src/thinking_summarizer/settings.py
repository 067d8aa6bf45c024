"""Project settings: configuration loading and hooks."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
# `soft`: an environment such as conf/gpu overrides single keys, not whole top-level sections
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local",
                      "merge_strategy": {"parameters": "soft", "catalog": "soft"}}
# kedro-mlflow is switched on by the training issue, once conf/base/mlflow.yml exists
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)

from thinking_summarizer.hooks import CredentialsHook  # noqa: E402

HOOKS = (CredentialsHook(),)
