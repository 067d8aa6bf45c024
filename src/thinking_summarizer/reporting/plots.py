"""Plots for reports and MLflow artefacts. Figures are written to files and closed; no backend is forced, so
a notebook that imports this module keeps its inline backend (matplotlib falls back to Agg without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt


def loss_curve(log_history: list[dict[str, Any]], path: str | Path) -> Path:
    """Train loss per logging step and eval loss per evaluation, against the step."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("loss", "train"), ("eval_loss", "val")):
        points = [(h["step"], h[key]) for h in log_history if key in h]
        if points:
            ax.plot(*zip(*points), marker="o" if key == "eval_loss" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("LoRA training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def grouped_bars(values: dict[str, dict[str, float]], path: str | Path, title: str, ylabel: str) -> Path:
    """One group of bars per category (outer key), one bar per series (inner key)."""
    categories = list(values)
    series = sorted({s for v in values.values() for s in v})
    width = 0.8 / max(1, len(series))
    # a page-wide figure whatever the number of bars (a wider one is shrunk to the page and its text with it)
    fig, ax = plt.subplots(figsize=(10, 4.6))
    for i, name in enumerate(series):
        xs = [c + i * width for c in range(len(categories))]
        ax.bar(xs, [values[c].get(name, 0.0) for c in categories], width, label=name)
    ax.set_xticks([c + width * (len(series) - 1) / 2 for c in range(len(categories))])
    ax.set_xticklabels(categories, rotation=30, ha="right", fontsize=10)
    ax.tick_params(axis="y", labelsize=10)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.set_title(title, fontsize=13)
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, never over bars
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def distributions(samples: dict[str, list[float]], path: str | Path, title: str, xlabel: str) -> Path:
    """Box plots of one value per series (e.g. per-sample latency per system)."""
    names = [n for n, v in samples.items() if v]
    fig, ax = plt.subplots(figsize=(10, 0.7 * max(2, len(names)) + 1.6))
    if names:
        ax.boxplot([samples[n] for n in names], orientation="horizontal", tick_labels=names)
    ax.tick_params(labelsize=10)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_title(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
