"""Every shape in one place: the records the pipelines exchange (`records`), what a stage hands to MLflow
(`tracking`), and every parameter section (`params`)."""

from thinking_summarizer.schemas.params import RunParams, override_errors, parameter_errors
from thinking_summarizer.schemas.records import (
    DemoScene, Priority, ProblemType, Row, Sample, SceneObject, SourceRecord, Summary, VisualObject, field_errors, video_id,
)
from thinking_summarizer.schemas.tracking import LoggedInput, RegistryUpdate, TrackingRecord

__all__ = ["DemoScene", "LoggedInput", "Priority", "ProblemType", "RegistryUpdate", "Row", "RunParams", "Sample",
           "SceneObject", "SourceRecord", "Summary", "TrackingRecord", "VisualObject", "field_errors",
           "override_errors", "parameter_errors", "video_id"]
