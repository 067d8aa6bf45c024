"""Record shapes checked where the catalog saves and loads them: a catalog entry's `validator:` (Kedro's own
dataset validation) names the model of `schemas.records` its records are. The data passes on unchanged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from thinking_summarizer.schemas import records
from thinking_summarizer.schemas.records import field_errors

SHOWN = 5  # problems named in the message; the count says how many there were


class Records:
    """Each record of a list (or each value of a mapping, by its key) is one `model` of `schemas.records`."""

    def __init__(self, model: str):
        found = getattr(records, model, None)
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise ValueError(f"{model!r} is no record model of thinking_summarizer.schemas.records")
        self.model: type[BaseModel] = found

    def validate(self, data: Any) -> Any:
        rows = data.items() if isinstance(data, dict) else enumerate(data)
        problems = []
        for where, row in rows:
            try:
                self.model.model_validate(row)
            except ValidationError as err:
                name = f"record {where}" + (f" ({row['sample_id']})" if isinstance(row, dict) and "sample_id" in row else "")
                problems += [f"{name}: {field}: {message}" for field, message in field_errors(err)]
        if problems:
            raise ValueError(f"{len(problems)} field(s) not a {self.model.__name__}: " + "; ".join(problems[:SHOWN])
                             + ("; ..." if len(problems) > SHOWN else ""))
        return data
