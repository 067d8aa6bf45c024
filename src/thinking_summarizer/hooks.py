"""Project hooks."""

from __future__ import annotations

import logging
import os

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from thinking_summarizer import tracking
from thinking_summarizer.run_summary import WHERE, summary_lines
from thinking_summarizer.schemas import parameter_errors

log = logging.getLogger(__name__)


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


class ParameterCheckHook:
    """Refuse to start a run whose parameters are wrong, naming every bad key at once."""

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        errors = parameter_errors(catalog.load("parameters"))
        if errors:
            raise ValueError("Invalid parameters:\n  " + "\n  ".join(errors))


class TrackingHook:
    """Point MLflow at the configured store before any node logs to it."""

    @hook_impl
    def after_context_created(self, context) -> None:
        tracking.configure(context.params["tracking"], context.project_path)


class RunSummaryHook:
    """Log a one-screen summary of what the run produced once it has finished."""

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        lines = summary_lines(pipeline.all_outputs(), catalog.load)
        if lines:
            log.info("Run summary (%d nodes)\n  %s\n  %s", len(pipeline.nodes), "\n  ".join(lines), WHERE)
