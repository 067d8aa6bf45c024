"""What every parameter section shares: unknown keys are errors, and backends are checked against the registry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from thinking_summarizer.backends import unknown_backend


class Section(BaseModel):
    """A parameter section as conf/base writes it: a key it does not declare is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def known_backend(key: str, name: str) -> str:
    """`name` when the backend registry knows it under `key`, else a ValueError naming the choices."""
    if error := unknown_backend(key, name):
        raise ValueError(error.split(": ", 1)[1])
    return name
