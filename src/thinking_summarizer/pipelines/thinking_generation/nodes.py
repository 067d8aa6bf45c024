"""Generate HumanOmniV2 thinking per shard (resumable), merge the shards, extract and gate."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, defaultdict
from typing import Callable

from thinking_summarizer.generators.cached import generate_cached
from thinking_summarizer.io.model_datasets import Thinker
from thinking_summarizer.io.result_cache import ResponseCache
from thinking_summarizer.reporting.run_summary import counts, shares
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration
from thinking_summarizer.text.tagged_output import extract
from thinking_summarizer.tiny_models import announce_stand_in

log = logging.getLogger(__name__)


def shard_of(sample_id: str, num_shards: int) -> int:
    """A stable shard for a sample: the same in every process and every run."""
    return int(hashlib.sha1(sample_id.encode()).hexdigest(), 16) % num_shards


def partition_name(shard_id: int, num_shards: int) -> str:
    return f"shard-{shard_id:03d}-of-{num_shards:03d}"


def generate_thinking(samples: list[Row], cache: ResponseCache, thinker: Thinker, tiny_thinker: Row,
                      cfg: ThinkingGeneration) -> dict[str, list[Row]]:
    """Generate this shard's samples with the `thinker` through the content-keyed `thinking_cache` (finished ones
    are never generated again); `tiny_thinker` is the stand-in demo_data built, if any."""
    shard_id, num_shards = cfg.shard_id, cfg.num_shards
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"thinking_generation.shard_id={shard_id} must be in [0, num_shards={num_shards})")
    mine = [s for s in samples if shard_of(s["sample_id"], num_shards) == shard_id]
    if cfg.backend == "transformers":
        announce_stand_in(tiny_thinker, cfg.transformers.model, "thinker")
    records = generate_cached(mine, cache, thinker, f"thinking shard {shard_id}/{num_shards}")
    return {partition_name(shard_id, num_shards): records}


def merge_thinking_shards(
    partitions: dict[str, Callable[[], list[Row]]], samples: list[Row], cfg: ThinkingGeneration
) -> list[Row]:
    """Join the shards of the configured split; every sampled id must appear exactly once."""
    suffix = f"-of-{cfg.num_shards:03d}"
    found = sorted(name for name in partitions if name.endswith(suffix))
    expected = [partition_name(i, cfg.num_shards) for i in range(cfg.num_shards)]
    missing_shards = sorted(set(expected) - set(found))
    if missing_shards:
        raise ValueError(f"thinking shards not generated yet: {missing_shards}")
    merged = [r for name in expected for r in partitions[name]()]
    counts = Counter(r["sample_id"] for r in merged)
    wanted = {s["sample_id"] for s in samples}
    missing, twice = sorted(wanted - counts.keys()), sorted(k for k, n in counts.items() if n > 1)
    extra = sorted(counts.keys() - wanted)
    if missing or twice or extra:
        raise ValueError(f"shards do not cover the samples exactly once: missing {missing[:5]} ({len(missing)}), "
                         f"duplicated {twice[:5]} ({len(twice)}), not sampled {extra[:5]} ({len(extra)})")
    return merged


def answer_correct(predicted: str | None, gold: str | None, problem_type: str) -> bool | None:
    """Whether an extracted answer matches the reference, by problem type; None when there is no reference."""
    if not gold:
        return None
    predicted = (predicted or "").strip()
    if problem_type in ("multiple choice", "emer_ov_mc"):
        letters = lambda text: set(re.findall(r"\b([A-Z])\b", text.upper()))  # noqa: E731
        return letters(predicted) == letters(gold) and bool(letters(gold))
    if problem_type in ("numerical", "regression"):
        try:
            return abs(float(predicted) - float(gold)) <= 1e-6 * max(1.0, abs(float(gold)))
        except ValueError:
            return False
    return " ".join(predicted.lower().split()) == " ".join(gold.lower().split())


def gate_thinking(
    raw: list[Row], samples: list[Row], cfg: ThinkingGeneration
) -> tuple[list[Row], list[Row], Row]:
    """Extract context/think/answer, keep thinking of the configured length, drop duplicates; report accuracy."""
    gates = cfg.gates
    by_id = {s["sample_id"]: s for s in samples}
    kept, rejects, seen = [], [], {}
    accuracy: dict[str, list[bool]] = defaultdict(list)
    for record in raw:
        sample = by_id[record["sample_id"]]
        reject = {"sample_id": record["sample_id"], "generator_id": record["generator_id"]}
        if record["error"]:
            rejects.append(reject | {"reason": record["error"].split(":")[0], "detail": record["error"]})
            continue
        parts = extract(record["raw_text"])
        thinking = parts.thinking or ""
        if parts.thinking is None or parts.answer is None:
            reason, detail = "no_tags", "; ".join(parts.problems)
        elif len(thinking) < gates.min_chars:
            reason, detail = "too_short", f"{len(thinking)} chars < {gates.min_chars}"
        elif len(thinking) > gates.max_chars:
            reason, detail = "too_long", f"{len(thinking)} chars > {gates.max_chars}"
        elif thinking in seen:
            reason, detail = "duplicate_thinking", f"same thinking as {seen[thinking]}"
        else:
            reason = ""
        if reason:
            rejects.append(reject | {"reason": reason, "detail": detail})
            continue
        seen[thinking] = record["sample_id"]
        correct = answer_correct(parts.answer, sample.get("answer"), sample["problem_type"])
        if correct is not None:
            accuracy[sample["problem_type"]].append(correct)
        kept.append({"sample_id": record["sample_id"], "context": parts.context or "", "thinking": thinking,
                     "answer": parts.answer, "raw_text": record["raw_text"], "generator_id": record["generator_id"],
                     "answer_correct": correct})
    report = {
        "generated": len(raw), "kept": len(kept), "rejected": dict(Counter(r["reason"] for r in rejects)),
        "gates": {"min_chars": gates.min_chars, "max_chars": gates.max_chars},
        "accuracy_by_problem_type": {t: round(sum(v) / len(v), 4) for t, v in sorted(accuracy.items())},
        "thinking_chars": {"min": min((len(k["thinking"]) for k in kept), default=0),
                           "max": max((len(k["thinking"]) for k in kept), default=0)},
    }
    report["summary"] = (f"thinking_generation: {len(kept)} of {len(raw)} kept (length gate {gates.min_chars}-"
                         f"{gates.max_chars} chars), rejected {counts(report['rejected'])}, answer accuracy "
                         f"{shares(report['accuracy_by_problem_type'])}")
    log.info("Thinking gates (%d-%d chars): %d kept of %d, rejected %s, accuracy %s", gates.min_chars,
             gates.max_chars, len(kept), len(raw), report["rejected"], report["accuracy_by_problem_type"])
    return kept, rejects, report
