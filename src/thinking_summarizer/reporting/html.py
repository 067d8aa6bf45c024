"""A self-contained HTML page (tables, inline PNG plots, side-by-side text) for pipeline reports."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:14px;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td.note{text-align:left;color:#555;font-size:13px;overflow-wrap:anywhere}
.note-box{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
pre{white-space:pre-wrap;font-size:12px;margin:0}
.side{display:grid;grid-template-columns:1fr 1fr 1fr;gap:1em}.side>div{border:1px solid #ddd;padding:.5em}
img{max-width:100%}"""


def page(title: str, sections: list[str]) -> str:
    body = "\n".join(sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>")


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(text)}</h{level}>"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def metric_table(rows: list[str], columns: list[str], values: dict[tuple[str, str], tuple[str, float | None]],
                 notes: dict[str, str] | None = None) -> str:
    """Rows x columns of numbers (and a last column of `notes` per row); each cell carries the metric key it
    shows (`data-metric`)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns, *(["meaning"] if notes else [])])
    lines = [f"<tr>{head}</tr>"]
    for row in rows:
        cells = [f"<td>{html.escape(row)}</td>"]
        for column in columns:
            key, value = values.get((row, column), ("", None))
            shown = "" if value is None else f"{value:.4f}"
            cells.append(f"<td data-metric='{html.escape(key)}'>{shown}</td>")
        if notes:
            cells.append(f"<td class='note'>{html.escape(notes.get(row, ''))}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table>{''.join(lines)}</table>"


def note(text: str) -> str:
    return f"<p class='note-box'>{html.escape(text)}</p>"


def image(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def side_by_side(panels: list[tuple[str, str]]) -> str:
    divs = "".join(f"<div><b>{html.escape(t)}</b><pre>{html.escape(body)}</pre></div>" for t, body in panels)
    return f"<div class='side'>{divs}</div>"


def key_values(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in items.items())
    return f"<table>{rows}</table>"
