"""Load the source datasets, validate and unify their records, dedupe by video and sample."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.demo.corpus import write_corpus
from thinking_summarizer.schemas import Sample, SourceRecord
from thinking_summarizer.tagged_output import extract

log = logging.getLogger(__name__)


class SourceDataError(ValueError):
    """A source file or record that cannot be used; the message names file, record and field."""


def prepare_demo_corpus(demo: dict[str, Any]) -> dict[str, Any]:
    """Write the synthetic demo corpus unless an identical one is already on disk."""
    return write_corpus(demo)


def _read_records(path: Path) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """(index, raw record) pairs of a JSON list or JSONL file, and one reject per unparsable line."""
    if not path.is_file():
        raise SourceDataError(f"{path}: source file not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text))), []
        except json.JSONDecodeError as err:
            raise SourceDataError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from err
    records, broken = [], []
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            records.append((index, json.loads(line)))
        except json.JSONDecodeError as err:
            broken.append({"index": index, "field": "(record)", "reason": "invalid_json", "detail": err.msg})
    return records, broken


def _video_id(media: str) -> str:
    """A source-independent key for a video: its relative path, lower-cased, without extension."""
    return str(PurePosixPath(media.replace("\\", "/").lower()).with_suffix("")).lstrip("./")


def _unify(source: str, record: SourceRecord, video_path: Path) -> Sample:
    key = hashlib.sha1(f"{record.media}\n{record.problem}".encode()).hexdigest()[:10]
    reference = extract(record.solution) if record.solution else None
    return Sample(
        sample_id=f"{source}-{key}", source=source, video_id=_video_id(record.media),
        video_path=str(video_path), question=record.problem, options=record.options,
        problem_type=record.problem_type, answer=record.answer,
        reference_context=reference.context if reference else None,
        reference_thinking=reference.thinking if reference else None,
    )


def load_sources(
    sources: dict[str, dict[str, Any]], policy: dict[str, str], demo_manifest: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read every configured source, validate each record and unify the valid ones.

    Returns (samples, rejects). A reject names source, file, record index, field and reason; with
    `policy.on_invalid: fail` the first one raises `SourceDataError` instead.
    """
    log.info("Demo corpus seed %s (%s)", demo_manifest.get("seed"), demo_manifest.get("records"))
    samples, rejects = [], []
    for source, cfg in sources.items():
        path, root = Path(cfg["path"]), Path(cfg.get("video_root") or Path(cfg["path"]).parent)
        records, broken = _read_records(path)
        found = []
        for bad in broken:
            found.append({"source": source, "file": str(path), **bad})
        for index, raw in records:
            try:
                record = SourceRecord.model_validate(raw)
            except ValidationError as err:
                for problem in err.errors():
                    field = ".".join(str(p) for p in problem["loc"]) or "(record)"
                    found.append({"source": source, "file": str(path), "index": index, "field": field,
                                  "reason": "invalid_field", "detail": problem["msg"]})
                continue
            video_path = root / record.media
            if not video_path.is_file() and policy["on_missing_video"] == "reject":
                found.append({"source": source, "file": str(path), "index": index,
                              "field": "video" if record.video else "path", "reason": "missing_video",
                              "detail": f"no file at {video_path}"})
                continue
            samples.append(_unify(source, record, video_path).model_dump())
        if found and policy["on_invalid"] == "fail":
            first = found[0]
            raise SourceDataError(
                f"{first['file']} record {first['index']} field '{first['field']}': "
                f"{first['reason']} ({first['detail']}); {len(found)} bad record(s) in this file"
            )
        for reject in found:
            log.warning("Rejected %s record %s field %s: %s (%s)", reject["file"], reject["index"],
                        reject["field"], reject["reason"], reject["detail"])
        rejects += found
        log.info("Source %s: %d records read, %d rejected", source, len(records) + len(broken), len(found))
    return samples, rejects


def dedupe_by_video(
    samples: list[dict[str, Any]], sources: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep one sample per video: the first source in config order, then the smallest sample id."""
    rank = {name: i for i, name in enumerate(sources)}
    kept: dict[str, dict[str, Any]] = {}
    dropped = []
    for sample in sorted(samples, key=lambda s: (rank[s["source"]], s["sample_id"])):
        first = kept.setdefault(sample["video_id"], sample)
        if first is not sample:
            dropped.append({"source": sample["source"], "file": sources[sample["source"]]["path"],
                            "index": None, "field": "video", "reason": "duplicate_video",
                            "detail": f"{sample['sample_id']} shares video {sample['video_id']} with {first['sample_id']}"})
    log.info("Dedupe by video: %d kept, %d duplicates dropped", len(kept), len(dropped))
    return list(kept.values()), dropped


def allocate(capacity: dict[str, int], weights: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` over keys in proportion to `weights`, never above `capacity` (largest remainder).

    What a full key cannot take goes to the others, again in proportion to their weights.
    """
    share = {k: 0 for k in capacity}
    left = min(total, sum(capacity.values()))
    while left > 0:
        open_keys = [k for k in capacity if share[k] < capacity[k] and weights.get(k, 0) > 0]
        if not open_keys:
            break
        norm = sum(weights[k] for k in open_keys)
        exact = {k: left * weights[k] / norm for k in open_keys}
        grant = {k: min(int(exact[k]), capacity[k] - share[k]) for k in open_keys}
        for k in sorted(open_keys, key=lambda k: exact[k] - int(exact[k]), reverse=True):
            if sum(grant.values()) >= left:
                break
            if grant[k] < capacity[k] - share[k]:
                grant[k] += 1
        if not any(grant.values()):
            break
        for k in open_keys:
            share[k] += grant[k]
        left -= sum(grant.values())
    return share


def sample_by_ratio(
    samples: list[dict[str, Any]], sources: dict[str, dict[str, Any]], n_samples: int, seed: int
) -> list[dict[str, Any]]:
    """Draw `n_samples` by source ratio, stratified by problem type within a source; same seed, same draw."""
    strata: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for sample in sorted(samples, key=lambda s: s["sample_id"]):
        strata[sample["source"]][sample["problem_type"]].append(sample)
    available = {name: sum(len(v) for v in strata[name].values()) for name in sources}
    ratios = {n: float(c["ratio"]) for n, c in sources.items()}
    quota = allocate(available, ratios, n_samples)
    drawn = []
    for name, want in quota.items():
        if want < round(n_samples * ratios[name] / sum(ratios.values())):
            log.warning("Source %s has only %d usable samples for its ratio; others make up the rest", name, available[name])
        by_type = strata[name]
        sizes = {t: len(v) for t, v in by_type.items()}
        for ptype, k in allocate(sizes, {t: float(n) for t, n in sizes.items()}, want).items():
            drawn += random.Random(f"{seed}:{name}:{ptype}").sample(by_type[ptype], k)
    if len(drawn) < n_samples:
        log.warning("Asked for %d samples, only %d usable", n_samples, len(drawn))
    return sorted(drawn, key=lambda s: (s["source"], s["sample_id"]))


def sampling_report(
    loaded: list[dict[str, Any]], rejects: list[dict[str, Any]], duplicates: list[dict[str, Any]],
    sampled: list[dict[str, Any]],
) -> dict[str, Any]:
    """Counts per source, reasons for rejection, and the sampled set's make-up."""
    lengths = sorted(len(s["reference_thinking"] or "") for s in sampled)
    return {
        "valid_records": dict(Counter(s["source"] for s in loaded)),
        "rejected": dict(Counter(f"{r['source']}/{r['reason']}" for r in rejects + duplicates)),
        "sampled": len(sampled),
        "sampled_by_source": dict(Counter(s["source"] for s in sampled)),
        "sampled_by_problem_type": dict(Counter(s["problem_type"] for s in sampled)),
        "with_reference_thinking": sum(1 for s in sampled if s["reference_thinking"]),
        "reference_thinking_chars": {"min": lengths[0], "median": lengths[len(lengths) // 2],
                                     "max": lengths[-1]} if lengths else {},
    }
