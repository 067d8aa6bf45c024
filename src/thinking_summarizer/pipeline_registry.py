"""Every pipeline under `pipelines/`, and `__default__` running them in dependency order."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines.pop("__default__", None)
    # datasets connect the pipelines, so their sum runs in dependency order
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
