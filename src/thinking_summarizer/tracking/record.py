"""The catalog side of tracking, as kedro-mlflow does it: a node returns a `TrackingRecord`, and saving it to a
catalog entry of this type logs it into the MLflow run the `TrackingHook` made active for the node's stage."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from thinking_summarizer.schemas import RegistryUpdate, TrackingRecord


class MlflowRecordDataset(AbstractDataset[TrackingRecord, None]):
    """Write-only: metrics, tags, files, local artifacts, dataset inputs and registry changes of one stage."""

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {}

    def _load(self) -> None:
        raise DatasetError("a tracking record is logged to MLflow, not read back: open it with `make mlflow-ui`")

    def _save(self, data: TrackingRecord | dict[str, Any]) -> None:
        record = TrackingRecord.model_validate(data)
        if mlflow.active_run() is None:
            raise DatasetError("no MLflow run is active: tracking records are logged during `kedro run`, whose "
                               "TrackingHook opens the run")
        if record.metrics:
            mlflow.log_metrics(record.metrics)
        if record.tags:
            mlflow.set_tags(record.tags)
        for logged in record.inputs:
            dataset = mlflow.data.from_pandas(pd.DataFrame(logged.rows), name=logged.name, digest=logged.digest)
            mlflow.log_input(dataset, context=logged.context)
        self._log_files(record)
        if record.registry:
            _update_registry(record.registry)

    @staticmethod
    def _log_files(record: TrackingRecord) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in record.files.items():
                path = Path(tmp) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
            for name, local in record.local.items():
                if Path(local).is_dir():
                    mlflow.log_artifacts(local, artifact_path=name)
                else:
                    (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(tmp) / name).write_bytes(Path(local).read_bytes())
            if any(Path(tmp).iterdir()):
                mlflow.log_artifacts(tmp)


def _update_registry(update: RegistryUpdate) -> None:
    """Tag the version; move the alias onto it, and record the move as a tag of the run that decided it."""
    client = MlflowClient()
    for key, value in update.tags.items():
        client.set_model_version_tag(update.name, update.version, key, value)
    if update.alias:
        try:
            before = client.get_model_version_by_alias(update.name, update.alias).version
        except MlflowException:
            before = None
        client.set_registered_model_alias(update.name, update.alias, update.version)
        mlflow.set_tag(f"registry.alias.{update.alias}",
                       f"{update.name} version {update.version} (was {'unset' if before is None else before})")
