"""Label each thinking with a structured summary from the configured teacher."""

from __future__ import annotations

import logging
from collections import Counter

from thinking_summarizer.errors import ServerUnreachableError
from thinking_summarizer.io.openai_client import TRANSIENT
from thinking_summarizer.schemas import Row, Summary
from thinking_summarizer.schemas.params.shared import SummaryQC, Vocabulary
from thinking_summarizer.schemas.params.teacher import Price, TeacherLabeling
from thinking_summarizer.text.label_quality import CHECKS, LabelChecker, quality_report
from thinking_summarizer.teachers import Teacher
from thinking_summarizer.text.summary_format import category_lookup, render

log = logging.getLogger(__name__)


def _stop_when_every_request_failed(labels: list[Row], rejects: list[Row], teacher_cfg: TeacherLabeling) -> None:
    """A run whose every request failed on the way (no answer at all) stops, naming the first error and the count;
    such failures are not cached, so a rerun asks again."""
    failed = [r for r in rejects if r["reason"] in TRANSIENT]
    if failed and not labels and len(failed) == len(rejects):
        where = teacher_cfg.openai.base_url
        counts = ", ".join(f"{reason} x{n}" for reason, n in Counter(r["reason"] for r in failed).items())
        raise ServerUnreachableError(f"teacher_labeling: no request to {where} was answered ({counts}); the first: "
                                     f"{failed[0]['sample_id']}: {failed[0]['reason']}: {failed[0]['detail']}")


def label_thinking(
    thinking_records: list[Row], teacher: Teacher, teacher_cfg: TeacherLabeling, vocabulary: Vocabulary,
    qc: SummaryQC,
) -> tuple[list[Row], list[Row], Row]:
    """The `teacher`'s summary of each thinking: (labels, rejects, usage report); every record ends in exactly one
    of the two lists.

    Usage and cost count this run's fresh calls only (a cached answer was paid for before), priced by
    `prices_per_million_tokens` for the teacher's model (0 for a model not listed, such as a local server).
    The report's `quality` is the label quality check (`text.label_quality`) over the labels kept.
    """
    lookup = category_lookup(vocabulary)
    outcomes = teacher.label_all([(r["sample_id"], r["thinking"]) for r in thinking_records])
    labels, rejects = [], []
    for outcome in outcomes:
        row = {"sample_id": outcome.sample_id, "teacher": teacher.model_id, "prompt_version": teacher.prompt_version}
        if outcome.status == "labelled":
            labels.append(row | {"summary": outcome.summary, "markdown": render(Summary(**outcome.summary), lookup),
                                 "cached": outcome.cached})
        else:
            rejects.append(row | {"reason": outcome.reason, "detail": outcome.detail})
    _stop_when_every_request_failed(labels, rejects, teacher_cfg)
    tokens_in = sum(o.usage["prompt_tokens"] for o in outcomes)
    tokens_out = sum(o.usage["completion_tokens"] for o in outcomes)
    price = teacher_cfg.openai.prices_per_million_tokens.get(teacher.model_id) or Price(input=0, output=0)
    report = {
        "teacher": teacher.model_id, "prompt_version": teacher.prompt_version, "samples": len(outcomes),
        "labelled": len(labels), "rejected": len(rejects), "rejected_by_reason": dict(Counter(r["reason"] for r in rejects)),
        "cached": sum(o.cached for o in outcomes), "api_calls": sum(o.calls for o in outcomes),
        "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
        "estimated_cost": round((tokens_in * price.input + tokens_out * price.output) / 1e6, 4),
    }
    checker = LabelChecker(teacher_cfg.extractive, vocabulary, qc.empty_description_words)
    report["quality"] = quality_report(labels, {r["sample_id"]: r["thinking"] for r in thinking_records}, checker,
                                       teacher_cfg.quality_check.max_examples)
    report["summary"] = (f"teacher_labeling ({teacher.model_id}): {len(labels)} labelled, {len(rejects)} rejected, "
                         f"{report['api_calls']} API calls, est. cost {report['estimated_cost']}; label check: "
                         + ", ".join(f"{k.replace('_', ' ')} {report['quality'][k]}" for k in CHECKS))
    log.info("Teacher %s: %d labelled, %d rejected %s, %d API calls, %d+%d tokens, est. cost %.4f",
             teacher.model_id, len(labels), len(rejects), report["rejected_by_reason"], report["api_calls"],
             tokens_in, tokens_out, report["estimated_cost"])
    return labels, rejects, report
