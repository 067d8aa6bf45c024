"""Call a node from JSON arguments the way a Kedro run calls it: an argument whose type hint is a pydantic model
(a parameter section) is validated into that model, as Kedro builds parameters from node type hints. For the
tests that run a node in a child process."""

from __future__ import annotations

import importlib
import inspect
import json
import types
import typing
from typing import Any

from pydantic import BaseModel


def to_json(args: list) -> str:
    """Arguments as JSON, parameter sections as conf writes them."""
    return json.dumps(args, default=lambda value: value.model_dump(mode="json", by_alias=True))


def _model(hint: Any) -> type[BaseModel] | None:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)


def call(path: str, args: list) -> Any:
    """`module:function`(*args), each argument typed by the function's hints."""
    module, name = path.split(":")
    function = getattr(importlib.import_module(module), name)
    hints = typing.get_type_hints(function)
    typed = [model.model_validate(arg) if arg is not None and (model := _model(hints.get(param))) else arg
             for param, arg in zip(inspect.signature(function).parameters, args)]
    return function(*typed)
