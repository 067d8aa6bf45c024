"""What a stage hands to MLflow, as pydantic v2 models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LoggedInput(BaseModel):
    """A dataset a stage read, logged as an MLflow dataset input (name, digest, rows)."""

    name: str
    context: str
    digest: str
    rows: list[dict[str, Any]]


class RegistryUpdate(BaseModel):
    """A change to a registered model version: its tags, and the alias moved onto it (None: no move)."""

    name: str
    version: str
    alias: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class TrackingRecord(BaseModel):
    """What a stage hands to MLflow, as a node output: the tracking catalog dataset logs it into the stage's
    child run (nodes never call MLflow). `files` are written into the run, `local` are paths already on disk."""

    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str | bytes] = Field(default_factory=dict)
    local: dict[str, str] = Field(default_factory=dict)
    inputs: list[LoggedInput] = Field(default_factory=list)
    registry: RegistryUpdate | None = None
