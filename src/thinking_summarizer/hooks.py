"""Project hooks."""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.config import MissingConfigException, OmegaConfigLoader
from kedro.framework.hooks import hook_impl

from thinking_summarizer.errors import ConfigurationError, PreflightError
from thinking_summarizer.io.model_datasets import bind_models
from thinking_summarizer.reporting.run_summary import summary_lines
from thinking_summarizer.runtime import preflight
from thinking_summarizer.schemas import RunParams, override_errors, parameter_errors

log = logging.getLogger(__name__)


def _key_settings(params: Any) -> list[dict[str, Any]]:
    """Every parameter section that names a key variable (`api_key_env`) and its credentials entry."""
    if not isinstance(params, dict):
        return []
    here = [params] if params.get("api_key_env") and params.get("credentials") else []
    return here + [found for value in params.values() for found in _key_settings(value)]


class CredentialsHook:
    """Expose API keys from `conf/local/credentials.yml` as the environment variables the clients read.

    A section such as `teacher_labeling.openai` names both: `credentials: teacher_api` (the entry, holding
    `api_key`) and `api_key_env: TEACHER_API_KEY`. Keys never travel through parameters, which are logged.
    A variable already set in the environment wins. The parameters are the run's as `parameters` read them.
    """

    def __init__(self, parameters: ParametersHook) -> None:
        self.parameters = parameters

    @hook_impl
    def after_context_created(self, context) -> None:
        try:
            credentials = context.config_loader["credentials"]
        except MissingConfigException:
            return
        for section in _key_settings(self.parameters.raw):
            key = (credentials.get(section["credentials"]) or {}).get("api_key")
            if key and not os.environ.get(section["api_key_env"]):
                os.environ[section["api_key_env"]] = key


class ParametersHook:
    """Refuse to start a run whose parameters are wrong, or whose models or GPU are not there, naming every
    problem at once, before any node runs. Nodes get their sections as the typed models of `schemas.params`:
    Kedro builds each from its node's type hint; this check covers every section, also those no node of the run
    reads, and names a misspelt key's nearest known one. The catalog's models (`io.model_datasets`) are bound to
    the same checked sections when the catalog is created."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}  # the run's parameters as written (with its --params), read once per run
        self.typed: RunParams | None = None

    @hook_impl(tryfirst=True)  # before any other hook reads the parameters
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        base = OmegaConfigLoader(str(loader.conf_source), env=loader.base_env, base_env=loader.base_env,
                                 default_run_env=loader.base_env)
        params = self.raw = loader["parameters"]  # with --params; not `context.params`, where Kedro builds models
        open_mappings = (params.get("parameter_check") or {}).get("open_mappings", [])
        errors = override_errors(params, base["parameters"], open_mappings)
        self.typed, invalid = parameter_errors(params)
        named = {error.split(":")[0] for error in errors}  # a misspelt key once, with its nearest known one
        errors += [error for error in invalid if error.split(":")[0] not in named]
        if errors:
            raise ConfigurationError("Invalid parameters:\n  " + "\n  ".join(errors))

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        if self.typed is not None:
            bind_models(catalog, self.typed)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        reads = {name for node in pipeline.nodes for name in node.inputs}
        missing = preflight.problems(self.typed, reads, pipeline.all_outputs(), self.typed.preflight)
        if missing:
            raise PreflightError("Preflight: this run cannot load what it needs:\n  " + "\n  ".join(missing))


class RunSummaryHook:
    """A summary of what the run produced, once it has finished: one line per stage and where the MLflow runs
    are (from `tracking`, the TrackingHook), as a plain block (the rich log handler would fold it into its
    80-column message column)."""

    def __init__(self, tracking=None) -> None:
        self.tracking = tracking

    @staticmethod
    def _plain_logger() -> logging.Logger:
        # set up when used: Kedro's logging config, applied after the hooks exist, resets child loggers
        logger = logging.getLogger("thinking_summarizer.reporting.run_summary")
        logger.propagate, logger.level = False, logging.INFO
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        return logger

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        produced = list(dict.fromkeys(name for node in pipeline.nodes for name in node.outputs))  # in run order
        lines, where_line = summary_lines(produced, catalog)
        if lines:
            tracked = self.tracking.describe() if self.tracking else None
            where = [where_line] + ([tracked] if tracked else [])
            block = "\n".join(f"  {line}" for line in [*lines, *where])
            self._plain_logger().info("\nRun summary (%d nodes)\n%s\n", len(pipeline.nodes), block)
