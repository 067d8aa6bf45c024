"""The evaluation report: comparison tables of the logged numbers, plots, and the worst samples."""

from __future__ import annotations

from pathlib import Path

from thinking_summarizer.reporting import html as r
from thinking_summarizer.reporting.plots import distributions, grouped_bars
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.evaluation import Evaluation

SPEED = ["latency_p50_s", "latency_p95_s", "samples_per_s", "peak_memory_mb"]
GLOSSARY = {  # the metric (without its reference) -> what it means; docs/metrics.md says more
    "format_valid": "share of outputs that parse into the summary schema",
    "placeholder": "share of outputs with placeholder text ([color], TBD, ...); lower is better",
    "category_validity": "share of objects whose category is in the vocabulary",
    "prompt_coverage": "share of objects with their own SAM3 prompt",
    "prompt_grounding": "share of objects whose SAM3 prompt says only what their description says",
    "object_recall": "reference objects found (same category, covering their colour/clothing/position words)",
    "object_precision": "predicted objects that match a reference object",
    "object_f1": "harmonic mean of object precision and recall",
    "primary_f1": "object F1 over primary objects only",
    "key_point_rouge_l": "ROUGE-L F of the key points against the teacher's",
    "emotion_f1": "word F1 of the emotion indicators against the teacher's",
    "latency_p50_s": "median seconds a sample waits for its summary",
    "latency_p95_s": "95th-percentile seconds a sample waits",
    "samples_per_s": "summaries per second over the whole set",
    "peak_memory_mb": "peak GPU memory, or process RSS on CPU",
}


def _headline(reference: str) -> list[str]:
    return ["format_valid", "placeholder", "category_validity", "prompt_coverage", "prompt_grounding",
            f"object_recall/{reference}",
            f"object_precision/{reference}", f"object_f1/{reference}", f"primary_f1/{reference}",
            "object_f1/teacher", "key_point_rouge_l/teacher", "emotion_f1/teacher"]


def _plots(table: list[Row], flat: dict[str, float], systems: list[str], sources: list[str],
           reference: str, folder: Path) -> dict[str, Path]:
    return {
        "metrics per system": grouped_bars(
            {k: {s: flat.get(f"{s}/{k}", 0.0) for s in systems} for k in _headline(reference)},
            folder / "metrics.png", "Summary quality per system", "score"),
        "recall per source": grouped_bars(
            {src: {s: flat.get(f"{s}/by_source/{src}/object_recall/{reference}", 0.0) for s in systems}
             for src in sources},
            folder / "recall_by_source.png", f"Object recall vs {reference} per source", "recall"),
        "latency": distributions(
            {s: [row["seconds"] for row in table if row["system"] == s and row["seconds"] is not None]
             for s in systems}, folder / "latency.png", "Latency per sample", "seconds"),
    }


def _same_systems(table: list[Row], systems: list[str]) -> list[tuple[str, str]]:
    """Pairs of systems whose every output is the same text (e.g. the default run's teacher and baseline)."""
    texts = {s: [row["text"] for row in sorted(table, key=lambda r: r["sample_id"]) if row["system"] == s]
             for s in systems}
    return [(a, b) for i, a in enumerate(systems) for b in systems[i + 1:] if texts[a] and texts[a] == texts[b]]


def _meaning(metric: str) -> str:
    name, _, reference = metric.partition("/")
    return GLOSSARY.get(name, "") + (f" (vs {reference})" if reference else "")


def build_report(table: list[Row], results: Row, decision: Row,
                 outputs: Row, val_examples: list[Row], cfg: Evaluation,
                 flat: dict[str, float], folder: Path, experiment: str) -> str:
    """The HTML page; its plots are also written to `folder`. Every number shown is `flat[cell's key]`.
    Tables list metrics down and systems across, so they fit a page whatever the number of metrics."""
    systems = list(results["systems"])
    reference = "truth" if results["with_truth"] else "teacher"
    headline = _headline(reference)
    plots = _plots(table, flat, systems, sorted({e["source"] for e in val_examples}), reference, folder)
    score = f"object_f1/{reference}"
    worst = sorted((row for row in table if row["system"] == "student"),
                   key=lambda row: (row.get(score) or 0.0, row["sample_id"]))[: cfg.worst_samples]
    by_id = {e["sample_id"]: e for e in val_examples}

    def cells(keys: list[str]) -> dict[tuple[str, str], tuple[str, float | None]]:
        return {(k, s): (f"{s}/{k}", flat.get(f"{s}/{k}")) for s in systems for k in keys}

    same = [r.note(f"'{a}' and '{b}' wrote identical summaries for every sample: they are one system here "
                   f"(the default run's teacher is the extractive baseline itself), so their rows agree.")
            for a, b in _same_systems(table, systems)]

    sections = [
        r.paragraph(f"Student {outputs['student_source']} on {results['samples']} val samples "
                    f"({results['with_truth']} with ground-truth objects). Object metrics pair a predicted object "
                    f"with a reference object of the same category when it covers at least "
                    f"{cfg.min_attribute_overlap:.0%} of the reference's colour, clothing and position words, at "
                    f"least as much of its own are right, and a person noun it names (man, woman, ...) is the "
                    f"reference's. Every number is logged in MLflow: experiment {experiment}, the evaluation "
                    "child run of this kedro run (`make mlflow-ui`)."),
        *same,
        r.heading("Promotion"),
        r.key_values({k: decision[k] for k in ("metric", "candidate_score", "champion_score", "promoted", "reason")}),
        r.heading("Quality"), r.metric_table(headline, systems, cells(headline), {k: _meaning(k) for k in headline}),
        r.heading("Speed"), r.metric_table(SPEED, systems, cells(SPEED), {k: _meaning(k) for k in SPEED}),
        *(r.image(path, name) for name, path in plots.items()),
        r.heading(f"Worst student samples ({score})"),
        *(r.side_by_side([("thinking", by_id[row["sample_id"]]["thinking"]),
                          ("reference (teacher)", by_id[row["sample_id"]]["markdown"]),
                          (f"student ({score} {row.get(score) or 0:.2f})", row["text"])]) for row in worst),
    ]
    return r.page("thinking-summarizer evaluation", sections)
