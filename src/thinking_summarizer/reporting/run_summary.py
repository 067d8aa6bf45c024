"""The one-screen summary at the end of `kedro run`: what ran, how many samples, key metrics, where to look.

One interface, no list of datasets here: a dataset whose catalog entry has `metadata: {run_summary: line}` is a
report that carries its own line (its `summary` field, written by the node that made it); one with
`run_summary: {where: <what>}` is an output to point at ("<what> <its path>").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import DataCatalog


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def counts(found: dict[str, Any], none: str = "none") -> str:
    """`{'a': 2, 'b': 1}` as "a 2, b 1" (largest first); `none` for an empty mapping."""
    return ", ".join(f"{k} {v}" for k, v in sorted(found.items(), key=lambda kv: -kv[1])) or none


def shares(found: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {pct(v)}" for k, v in found.items()) or "n/a"


def role(catalog: DataCatalog, name: str) -> Any:
    """What a dataset's catalog entry says it is to the run summary (None: nothing)."""
    return (getattr(catalog.get(name), "metadata", None) or {}).get("run_summary")


def _shown_path(described: dict[str, Any]) -> str:
    """A dataset's file, or its folder with a trailing slash, relative to the project when inside it."""
    path = Path(str(described.get("filepath") or described.get("path")))
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return f"{path}/" if "path" in described and "filepath" not in described else str(path)


def summary_lines(produced: list[str], catalog: DataCatalog) -> tuple[list[str], str]:
    """The lines of the reports this run produced (`produced`: in pipeline order), and where its outputs are:
    data/ always, and each output marked `where` that the run made."""
    lines = [catalog.load(name)["summary"] for name in produced if role(catalog, name) == "line"]
    places = []
    for name in produced:
        if isinstance(where := role(catalog, name), dict):
            places.append(f"{where['where']} {_shown_path(catalog.get(name)._describe())}")
    return lines, "outputs: data/ (versioned per run)" + "".join(f"; {place}" for place in places)
