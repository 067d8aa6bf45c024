"""The one-screen summary at the end of `kedro run`: what ran, how many samples, key metrics, where to look."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thinking_summarizer.text.label_quality import CHECKS


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _counts(counts: dict[str, Any], none: str = "none") -> str:
    """`{'a': 2, 'b': 1}` as "a 2, b 1" (largest first); `none` for an empty mapping."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or none


def _shares(shares: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {_pct(v)}" for k, v in shares.items()) or "n/a"


def _evaluation(r: dict[str, Any]) -> str:
    ref = "truth" if r["with_truth"] else "teacher"
    parts = []
    for system in ("student", "untrained", "teacher", "baseline"):
        o = r["systems"].get(system, {}).get("overall")
        if o is not None:
            parts.append(f"{system} format {_pct(o.get('format_valid'))}, object F1 vs {ref} "
                         f"{o.get(f'object_f1/{ref}', 0):.3f} (primary {o.get(f'primary_f1/{ref}', 0):.3f}), "
                         f"prompts grounded {_pct(o.get('prompt_grounding'))}")
    return f"evaluation on {r['samples']} val samples: " + "; ".join(parts)


LINES: dict[str, Callable[[Any], str]] = {
    "sampling_report": lambda r: (f"data_sampling: {r['sampled']} samples ({_counts(r['sampled_by_source'])}) from "
                                  f"{'the synthetic demo corpus (no source configured)' if r['demo'] else 'your sources'}"),
    "thinking_report": lambda r: (f"thinking_generation: {r['kept']} of {r['generated']} kept (length gate "
                                  f"{r['gates']['min_chars']}-{r['gates']['max_chars']} chars), rejected {_counts(r['rejected'])}, "
                                  f"answer accuracy {_shares(r['accuracy_by_problem_type'])}"),
    "teacher_usage": lambda r: (f"teacher_labeling ({r['teacher']}): {r['labelled']} labelled, {r['rejected']} rejected, "
                                f"{r['api_calls']} API calls, est. cost {r['estimated_cost']}; label check: "
                                + ", ".join(f"{k.replace('_', ' ')} {r['quality'][k]}" for k in CHECKS)),
    "dataset_qc_report": lambda r: f"dataset_build: kept {r['kept']} ({_pct(r['keep_rate'])}), rejected {_counts(r['rejected_by_reason'])}",
    "split_report": lambda r: f"dataset_build: {r['train']} train / {r['val']} val",
    "training_result": lambda r: (f"lora_training: {r['metrics']['steps']} steps, best val loss "
                                  f"{r['metrics']['best_eval_loss']:.4f}, {r['metrics']['tokens_per_second']:.0f} tokens/s, "
                                  f"{r['metrics']['trainable_parameters']:,} trainable parameters "
                                  f"({_pct(r['metrics']['trainable_fraction'])}); adapter {r['adapter_dir']}"),
    "registered_student": lambda r: f"registry: {r['model_uri']} (MLflow run {r['run_id']})",
    "evaluation_results": _evaluation,
    "promotion_decision": lambda r: f"promotion: {'promoted' if r['promoted'] else 'kept champion'} ({r['reason']})",
    "segmentation_stats": lambda r: (f"video_segmentation: {r['segmented']} of {r['samples']} videos, "
                                     f"{r['objects_per_video']} objects per video, coverage {r['frame_coverage']}, "
                                     f"J&F vs truth {r['truth_mean_j_and_f']}"),
}
# where to look, for what the run made: (the dataset that says it was made, where it is)
WHERE = (("evaluation_results", "report data/08_reporting/evaluation_report_latest.html"),
         ("segmentation_stats", "masked videos data/07_model_output/segmentation/videos/"))


def where_line(produced: set[str]) -> str:
    """Where this run's outputs are: data/ always, the report and the videos only when the run made them."""
    places = [place for name, place in WHERE if name in produced]
    return "outputs: data/ (versioned per run)" + "".join(f"; {place}" for place in places)


def summary_lines(produced: set[str], load: Callable[[str], Any]) -> list[str]:
    """A line per report dataset this run produced, in pipeline order."""
    return [line(load(name)) for name, line in LINES.items() if name in produced]
