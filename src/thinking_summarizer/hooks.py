"""Project hooks."""

from __future__ import annotations

import os

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl


class CredentialsHook:
    """Expose API keys from `conf/local/credentials.yml` as environment variables.

    Keys never travel through parameters, which are logged (kedro-mlflow logs every parameter).
    A variable already set in the environment wins.
    """

    # credentials entry -> environment variable the adapters read
    ENTRIES = {"teacher_api": "TEACHER_API_KEY", "thinking_api": "THINKING_API_KEY"}

    @hook_impl
    def after_context_created(self, context) -> None:
        try:
            credentials = context.config_loader["credentials"]
        except MissingConfigException:
            return
        for entry, variable in self.ENTRIES.items():
            key = (credentials.get(entry) or {}).get("api_key")
            if key and not os.environ.get(variable):
                os.environ[variable] = key
