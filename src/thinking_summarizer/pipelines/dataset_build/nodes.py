"""Turn teacher labels into clean, split, trainer-ready examples."""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict

from datasets import Dataset

from thinking_summarizer.reporting.run_summary import counts, pct
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.data import Split
from thinking_summarizer.schemas.params.shared import SummaryQC, Vocabulary
from thinking_summarizer.text.summary_format import category_lookup, format_regex, render
from thinking_summarizer.text.summary_qc import SummaryQCError, check_summary

log = logging.getLogger(__name__)


def select_clean_examples(
    labels: list[Row], teacher_rejects: list[Row], thinking_records: list[Row],
    samples: list[Row], vocabulary: Vocabulary, qc: SummaryQC,
) -> tuple[list[Row], list[Row], Row]:
    """Keep labelled samples whose summary passes QC again; report the keep rate per source and reason."""
    thinking = {r["sample_id"]: r["thinking"] for r in thinking_records}
    meta = {s["sample_id"]: s for s in samples}
    lookup = category_lookup(vocabulary)
    kept, rejects = [], []
    for reject in teacher_rejects:
        rejects.append({"sample_id": reject["sample_id"], "reason": f"teacher/{reject['reason']}",
                        "detail": reject["detail"]})
    for label in labels:
        sid = label["sample_id"]
        try:
            if sid not in thinking or sid not in meta:
                raise SummaryQCError("unknown_sample", f"{sid} has no thinking record or sampled sample")
            summary = check_summary(label["summary"], vocabulary, qc)
        except SummaryQCError as err:
            rejects.append({"sample_id": sid, "reason": err.reason, "detail": err.detail})
            continue
        sample = meta[sid]
        kept.append({"sample_id": sid, "source": sample["source"], "problem_type": sample["problem_type"],
                     "video_id": sample["video_id"], "thinking": thinking[sid], "summary": summary.model_dump(),
                     "markdown": render(summary, lookup), "teacher": label["teacher"]})
    source_of = {sid: s["source"] for sid, s in meta.items()}
    total = Counter(source_of.get(r["sample_id"], "unknown") for r in kept + rejects)
    kept_by = Counter(e["source"] for e in kept)
    report = {
        "labelled_or_rejected": len(kept) + len(rejects), "kept": len(kept),
        "keep_rate": round(len(kept) / max(1, len(kept) + len(rejects)), 4),
        "keep_rate_by_source": {s: round(kept_by[s] / n, 4) for s, n in sorted(total.items())},
        "rejected_by_reason": dict(Counter(r["reason"] for r in rejects).most_common()),
    }
    report["summary"] = (f"dataset_build: kept {len(kept)} ({pct(report['keep_rate'])}), rejected "
                         f"{counts(report['rejected_by_reason'])}")
    log.info("dataset_build QC: kept %d of %d (%.1f%%); rejected %s", len(kept), report["labelled_or_rejected"],
             100 * report["keep_rate"], report["rejected_by_reason"])
    return kept, rejects, report


def split_examples(
    examples: list[Row], split: Split
) -> tuple[list[Row], list[Row], Row]:
    """Stratified train/val split of whole videos: every sample of a video lands in the same split."""
    videos: dict[str, list[Row]] = defaultdict(list)
    for example in sorted(examples, key=lambda e: e["sample_id"]):
        videos[example["video_id"]].append(example)
    strata: dict[tuple, list[str]] = defaultdict(list)
    for video_id, group in videos.items():
        strata[tuple(group[0][key] for key in split.stratify_by)].append(video_id)
    val_videos: set[str] = set()
    for stratum, video_ids in sorted(strata.items()):
        random.Random(f"{split.seed}:{stratum}").shuffle(video_ids)
        val_videos.update(video_ids[: round(len(video_ids) * split.val_fraction)])
    train = [e for v, g in videos.items() if v not in val_videos for e in g]
    val = [e for v, g in videos.items() if v in val_videos for e in g]
    if not train:
        raise ValueError(f"the train split is empty ({len(examples)} clean examples, "
                         f"val_fraction={split.val_fraction})")
    report = {
        "summary": f"dataset_build: {len(train)} train / {len(val)} val",
        "train": len(train), "val": len(val),
        "videos_by_stratum": {"/".join(map(str, k)): {"train": sum(1 for v in ids if v not in val_videos),
                                                       "val": sum(1 for v in ids if v in val_videos)}
                       for k, ids in sorted(strata.items())},
    }
    log.info("Split: %d train, %d val over %d strata", len(train), len(val), len(strata))
    return train, val, report


def to_training_forms(examples: list[Row], instruction: str) -> tuple[Dataset, Dataset]:
    """The instruction/input/output form and the chat `messages` form, with the sample's identity columns."""
    identity = [{k: e[k] for k in ("sample_id", "source", "problem_type", "video_id")} for e in examples]
    alpaca = [ident | {"instruction": instruction, "input": e["thinking"], "output": e["markdown"]}
              for ident, e in zip(identity, examples)]
    chat = [ident | {"messages": [{"role": "system", "content": instruction},
                                  {"role": "user", "content": e["thinking"]},
                                  {"role": "assistant", "content": e["markdown"]}]}
            for ident, e in zip(identity, examples)]
    return Dataset.from_list(alpaca), Dataset.from_list(chat)


def summary_grammar(vocabulary: Vocabulary, qc: SummaryQC) -> str:
    """The regex every summary in the training data matches (`summary_format.format_regex`)."""
    return format_regex(qc, category_lookup(vocabulary))
