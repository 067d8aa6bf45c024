"""What every parameter section shares: unknown keys are errors, and backends are checked against the registry."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from thinking_summarizer.backends import unknown_backend


class Section(BaseModel):
    """A parameter section as conf/base writes it: a key it does not declare is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def registered(key: str) -> Any:
    """The type of a backend name: one the registry (`backends.REGISTRY`) knows under `key`."""
    def known(name: str) -> str:
        if error := unknown_backend(key, name):
            raise ValueError(error.split(": ", 1)[1])
        return name

    return Annotated[str, AfterValidator(known)]
