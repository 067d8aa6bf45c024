"""Student vs teacher vs extractive baseline (and the untrained base) on the val split: quality and speed."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

import numpy as np

from thinking_summarizer.io.hashing import content_hash
from thinking_summarizer.reporting.run_summary import pct
from thinking_summarizer.runtime.torch_runtime import peak_memory_mb, reset_peak_memory, resolve_device
from thinking_summarizer.schemas import LoggedInput, RegistryUpdate, Row, TrackingRecord
from thinking_summarizer.schemas.params.evaluation import Evaluation
from thinking_summarizer.schemas.params.shared import SummaryQC, Tracking, Vocabulary
from thinking_summarizer.schemas.params.teacher import Extractive, TeacherLabeling
from thinking_summarizer.student.backends import Summarizer
from thinking_summarizer.student.loader import StudentLoader
from thinking_summarizer.teachers.extractive import ExtractiveTeacher
from thinking_summarizer.text import metrics as m
from thinking_summarizer.text.summary_format import category_lookup, parse_lenient, render
from thinking_summarizer.text.summary_qc import SummaryQCError, check_summary

from .report import build_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringRules:
    """How an output is matched to a reference and checked: from `evaluation`, `vocabulary` and `summary_qc`."""

    lookup: dict[str, str]
    attribute_words: set[str]
    min_overlap: float
    truth_ignore: set[str]
    identity_words: set[str]
    exclusive: list[set[str]]
    placeholder_patterns: list[str]

    @classmethod
    def from_params(cls, cfg: Evaluation, vocabulary: Vocabulary, qc: SummaryQC) -> ScoringRules:
        return cls(lookup=category_lookup(vocabulary), attribute_words={w.lower() for w in cfg.attribute_words},
                   min_overlap=cfg.min_attribute_overlap, truth_ignore=set(cfg.truth_ignore_categories),
                   identity_words={w.lower() for w in cfg.identity_words},
                   exclusive=[{w.lower() for w in group} for group in cfg.exclusive_words],
                   placeholder_patterns=qc.placeholder_patterns)


def _student_outputs(student: Summarizer, examples: list[Row], cfg: Evaluation) -> Row:
    device = resolve_device(cfg.device)
    reset_peak_memory(device)
    started = time.perf_counter()
    out = student.summarize([e["thinking"] for e in examples], cfg.batch_size, cfg.max_new_tokens)
    total = time.perf_counter() - started
    # a sample's latency is the time of the batch it was generated in
    rows = [{"sample_id": e["sample_id"], "text": t, "seconds": s, "new_tokens": n}
            for e, t, s, n in zip(examples, out.texts, out.seconds, out.new_tokens)]
    return {"rows": rows, "total_seconds": total, "peak_memory_mb": peak_memory_mb(device)}


def _baseline_outputs(examples: list[Row], extractive_cfg: Extractive, vocabulary: Vocabulary,
                      qc: SummaryQC) -> Row:
    teacher, lookup = ExtractiveTeacher(extractive_cfg, vocabulary, qc), category_lookup(vocabulary)
    rows, started = [], time.perf_counter()
    for example in examples:
        begin = time.perf_counter()
        try:
            text = render(check_summary(teacher.summarize(example["thinking"]), vocabulary, qc), lookup)
        except SummaryQCError:
            text = ""  # the baseline found no summary that passes QC
        rows.append({"sample_id": example["sample_id"], "text": text, "seconds": time.perf_counter() - begin,
                     "new_tokens": None})
    return {"rows": rows, "total_seconds": time.perf_counter() - started, "peak_memory_mb": None}


def generate_summaries(
    val_examples: list[Row], registered: Row, students: StudentLoader, cfg: Evaluation, teacher_cfg: TeacherLabeling,
    vocabulary: Vocabulary, qc: SummaryQC,
) -> Row:
    """Every system's summary of every val sample, with timings: the released student (`registered`), the
    champion where it is another version, the untrained base, the teacher (its labels) and the baseline."""
    source = cfg.student or registered["model_uri"]
    log.info("Evaluating student %s on %d val samples (%s backend)", source, len(val_examples), students.backend)
    student = students.load(source, cfg.device)
    systems = {"student": _student_outputs(student, val_examples, cfg)}
    champion = students.version(registered["name"], cfg.promotion.alias)
    if champion and source != f"models:/{registered['name']}/{champion}":
        champ = students.load(f"models:/{registered['name']}/{champion}", cfg.device)
        systems["champion"] = _student_outputs(champ, val_examples, cfg) | {"version": champion}
    if cfg.include_untrained:
        systems["untrained"] = _student_outputs(students.untrained(student, cfg.device), val_examples, cfg)
    systems["teacher"] = {"rows": [{"sample_id": e["sample_id"], "text": e["markdown"], "seconds": None,
                                    "new_tokens": None} for e in val_examples],
                          "total_seconds": None, "peak_memory_mb": None}
    systems["baseline"] = _baseline_outputs(val_examples, teacher_cfg.extractive, vocabulary, qc)
    return {"student_source": source, "champion_version": champion, "systems": systems}


def _truth(ground_truth: dict[str, Row]) -> dict[str, list[Row]]:
    return {video_id: [{k: o[k] for k in ("category", "description", "priority")} for o in scene["objects"]]
            for video_id, scene in ground_truth.items()}


def _object_scores(predicted: list[Row], reference: list[Row], suffix: str, rules: ScoringRules) -> dict[str, float]:
    scores = {}
    for prefix, pred, ref in (("object", predicted, reference),
                              ("primary", [o for o in predicted if o["priority"] == "primary"],
                               [o for o in reference if o["priority"] == "primary"])):
        hits = m.match_objects(pred, ref, rules.lookup, rules.attribute_words, rules.min_overlap,
                               rules.identity_words, rules.exclusive)
        p, r, f = m.precision_recall_f1(hits, len(pred), len(ref))
        scores |= {f"{prefix}_precision/{suffix}": p, f"{prefix}_recall/{suffix}": r, f"{prefix}_f1/{suffix}": f}
    return scores


def score_sample(text: str, teacher: Row | None, truth: list[Row] | None, rules: ScoringRules) -> Row:
    """Every metric of one output; `/teacher` and `/truth` name the reference it is scored against."""
    parsed = parse_lenient(text, rules.lookup)
    objects = parsed["objects"]
    row: Row = {
        "format_valid": float(m.format_valid(text, rules.lookup)),
        "placeholder": float(m.has_placeholder(text, rules.placeholder_patterns)),
        "category_validity": m.category_validity(objects, rules.lookup),
        "prompt_coverage": m.prompt_coverage(objects, parsed["sam3_prompts"]),
        "prompt_grounding": m.prompt_grounding(objects),
        "objects": float(len(objects)),
    }
    if teacher is not None:
        row |= _object_scores(objects, teacher["objects"], "teacher", rules)
        row["key_point_rouge_l/teacher"] = m.rouge_l(parsed["key_points"], teacher["key_points"])
        row["emotion_f1/teacher"] = m.bag_f1(parsed["emotion_indicators"], teacher["emotion_indicators"])
    if truth is not None:
        visible = [o for o in objects if o["category"] not in rules.truth_ignore]
        row |= _object_scores(visible, truth, "truth", rules)
    return row


def _aggregate(rows: list[Row], keys: list[str]) -> dict[str, float]:
    return {k: round(mean(vals), 4) for k in keys if (vals := [r[k] for r in rows if r.get(k) is not None])}


def _speed(system: Row) -> dict[str, float]:
    seconds = [r["seconds"] for r in system["rows"] if r["seconds"] is not None]
    if not seconds or not system["total_seconds"]:
        return {}
    speed = {"latency_p50_s": float(np.percentile(seconds, 50)), "latency_p95_s": float(np.percentile(seconds, 95)),
             "samples_per_s": len(seconds) / system["total_seconds"]}
    if system["peak_memory_mb"] is not None:
        speed["peak_memory_mb"] = system["peak_memory_mb"]
    return {k: round(v, 4) for k, v in speed.items()}


def score_systems(
    outputs: Row, val_examples: list[Row], ground_truth: dict[str, Row], cfg: Evaluation, vocabulary: Vocabulary,
    qc: SummaryQC,
) -> tuple[list[Row], Row]:
    """A per-sample table and the metrics per system: overall, per source and per problem type."""
    rules = ScoringRules.from_params(cfg, vocabulary, qc)
    truth = _truth(ground_truth)
    by_id = {e["sample_id"]: e for e in val_examples}
    table = []
    for system, result in outputs["systems"].items():
        for out in result["rows"]:
            example = by_id[out["sample_id"]]
            teacher = None if system == "teacher" else example["summary"]
            scores = score_sample(out["text"], teacher, truth.get(example["video_id"]), rules)
            table.append({"system": system, "sample_id": out["sample_id"], "source": example["source"],
                          "problem_type": example["problem_type"], "seconds": out["seconds"], "text": out["text"],
                          **scores})
    keys = sorted({k for row in table for k in row if k not in
                   ("system", "sample_id", "source", "problem_type", "seconds", "text")})
    results: Row = {"samples": len(val_examples), "with_truth": sum(e["video_id"] in truth for e in val_examples),
                               "systems": {}}
    for system, result in outputs["systems"].items():
        rows = [r for r in table if r["system"] == system]
        groups: dict[str, dict[str, list]] = {"by_source": defaultdict(list), "by_problem_type": defaultdict(list)}
        for row in rows:
            groups["by_source"][row["source"]].append(row)
            groups["by_problem_type"][row["problem_type"]].append(row)
        results["systems"][system] = {
            "overall": _aggregate(rows, keys), "speed": _speed(result),
            **{name: {g: _aggregate(rs, keys) for g, rs in sorted(grouped.items())} for name, grouped in groups.items()},
        }
    results["summary"] = evaluation_line(results)
    student = results["systems"]["student"]["overall"]
    log.info("Student on %d val samples: format valid %.2f, object F1 vs truth %s, vs teacher %s",
             len(val_examples), student.get("format_valid", 0), student.get("object_f1/truth"),
             student.get("object_f1/teacher"))
    return table, results


def evaluation_line(results: Row) -> str:
    """The run summary's line: per system, format, object and primary F1 against the reference, grounding."""
    ref = "truth" if results["with_truth"] else "teacher"
    parts = []
    for system in ("student", "untrained", "teacher", "baseline"):
        o = results["systems"].get(system, {}).get("overall")
        if o is not None:
            parts.append(f"{system} format {pct(o.get('format_valid'))}, object F1 vs {ref} "
                         f"{o.get(f'object_f1/{ref}', 0):.3f} (primary {o.get(f'primary_f1/{ref}', 0):.3f}), "
                         f"prompts grounded {pct(o.get('prompt_grounding'))}")
    return f"evaluation on {results['samples']} val samples: " + "; ".join(parts)


def _primary(results: Row, system: str, cfg: Evaluation) -> tuple[str, float | None]:
    promotion = cfg.promotion
    key = f"{promotion.metric}/{promotion.reference}"
    if promotion.reference == "truth" and not results["with_truth"]:
        key = f"{promotion.metric}/teacher"  # no ground truth in this corpus: the teacher is the reference
    return key, results["systems"].get(system, {}).get("overall", {}).get(key)


def decide_promotion(results: Row, outputs: Row, registered: Row, cfg: Evaluation) -> tuple[Row, TrackingRecord]:
    """Promote the candidate when it beats the champion by the margin on the primary metric. The registry
    change (the alias moved onto it; its evaluation numbers as version tags) is the returned record's."""
    alias, margin = cfg.promotion.alias, cfg.promotion.margin
    metric, candidate = _primary(results, "student", cfg)
    _, champion = _primary(results, "champion", cfg)
    decision = {"candidate": registered["model_uri"], "candidate_version": registered["version"],
                "champion_version": outputs["champion_version"], "metric": metric, "candidate_score": candidate,
                "champion_score": champion, "margin": margin, "alias": alias}
    if outputs["student_source"] != registered["model_uri"]:
        decision |= {"promoted": False, "reason": f"evaluated {outputs['student_source']}, not the candidate"}
    elif outputs["champion_version"] == registered["version"]:
        decision |= {"promoted": False, "reason": "the candidate already is the champion"}
    elif candidate is None:
        decision |= {"promoted": False, "reason": f"no {metric} for the candidate"}
    elif outputs["champion_version"] is None or champion is None:
        decision |= {"promoted": True, "reason": "there was no champion yet"}
    elif candidate >= champion + margin:
        decision |= {"promoted": True, "reason": f"{metric} {candidate:.4f} >= champion {champion:.4f} + {margin}"}
    else:
        decision |= {"promoted": False, "reason": f"{metric} {candidate:.4f} < champion {champion:.4f} + {margin}"}
    decision["summary"] = (f"promotion: {'promoted' if decision['promoted'] else 'kept champion'} "
                           f"({decision['reason']})")
    version_tags = {}
    if outputs["student_source"] == registered["model_uri"]:  # the version's own evaluation, where users look
        version_tags = {f"eval.{key}": f"{value:.4f}" for key, value in results["systems"]["student"]["overall"].items()
                        if isinstance(value, (int, float))}
    record = TrackingRecord(
        tags={"promoted": str(decision["promoted"]), "promotion_reason": decision["reason"],
              "primary_metric": metric, "candidate_version": registered["version"],
              "champion_version": str(outputs["champion_version"])},
        registry=RegistryUpdate(name=registered["name"], version=registered["version"],
                                alias=alias if decision["promoted"] else None, tags=version_tags))
    log.info("Promotion: %s %s to @%s (%s)", registered["model_uri"], "promoted" if decision["promoted"] else "not moved",
             alias, decision["reason"])
    return decision, record


def flatten_results(results: Row) -> dict[str, float]:
    """Every number of the results under the MLflow key it is logged as: system/[group/name/]metric."""
    flat = {}
    for system, parts in results["systems"].items():
        flat |= {f"{system}/{k}": v for k, v in parts["overall"].items()}
        flat |= {f"{system}/{k}": v for k, v in parts["speed"].items()}
        for group in ("by_source", "by_problem_type"):
            for name, values in parts[group].items():
                flat |= {f"{system}/{group}/{name}/{k}": v for k, v in values.items()}
    return flat


def report_evaluation(
    table: list[Row], results: Row, decision: Row, outputs: Row, val_examples: list[Row], cfg: Evaluation,
    tracking_cfg: Tracking,
) -> tuple[str, str, TrackingRecord]:
    """The HTML report (for its versioned and its latest copy) and its tracking record: every number it shows,
    the per-sample table, the plots, the report itself and the val split as the run's input."""
    flat = flatten_results(results)
    with tempfile.TemporaryDirectory() as tmp:
        report = build_report(table, results, decision, outputs, val_examples, cfg, flat, Path(tmp),
                              tracking_cfg.experiment)
        plots = {path.name: path.read_bytes() for path in Path(tmp).iterdir()}
    record = TrackingRecord(
        metrics=flat, tags={"student": outputs["student_source"], "samples": str(results["samples"])},
        files={"evaluation_report.html": report, "per_sample.json": json.dumps(table, indent=1), **plots},
        inputs=[LoggedInput(name="val_examples", context="evaluation", digest=content_hash(val_examples),
                            rows=val_examples)])
    log.info("Evaluation report written; %d metrics go to the evaluation run", len(flat))
    return report, report, record
