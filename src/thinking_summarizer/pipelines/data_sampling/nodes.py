"""Load the source datasets, validate and unify their records, dedupe identical samples and sample."""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import random
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from thinking_summarizer.io.media import MediaError, VideoInfo, probe
from thinking_summarizer.pipelines.data_sampling.formats import AUTO, FORMATS, resolve
from thinking_summarizer.reporting.run_summary import counts
from thinking_summarizer.errors import UserFacingError
from thinking_summarizer.schemas import Row, Sample, SourceRecord, field_errors, video_id
from thinking_summarizer.schemas.params.data import DataSampling, SamplingPolicy, SourceConfig
from thinking_summarizer.text.tagged_output import extract

log = logging.getLogger(__name__)


class SourceDataError(UserFacingError, ValueError):
    """A source file or record that cannot be used; the message names file, record and field."""


def select_sources(params: DataSampling, demo_manifest: Row) -> dict[str, Row]:
    """The sources this run samples from: the configured ones, or the demo corpus when none is configured."""
    chosen = params.sources or params.demo_sources
    if not params.sources:
        log.info("No data_sampling.sources configured: sampling the synthetic demo corpus (seed %s)",
                 demo_manifest.get("seed"))
    for name, source in chosen.items():
        if source.format != AUTO and source.format not in FORMATS:
            raise SourceDataError(f"data_sampling.sources.{name}.format: unknown format {source.format!r} "
                                  f"(auto, {', '.join(FORMATS)})")
    return {name: source.model_dump() | {"demo": not params.sources} for name, source in chosen.items()}


class _Record(dict):
    """A JSON object as read, with the keys that it gave twice with different values (the last one would win)."""

    conflicts: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Record:
    record = _Record(pairs)
    seen: dict[str, Any] = {}
    conflicts = []
    for key, value in pairs:
        if key in seen and seen[key] != value and key not in conflicts:
            conflicts.append(key)
        seen[key] = value
    record.conflicts = tuple(conflicts)
    return record


def _read_records(path: Path) -> tuple[list[tuple[int, Any]], list[Row]]:
    """(index, raw record) pairs of a JSON list or JSONL file, and one reject per unparsable line."""
    if not path.is_file():
        raise SourceDataError(f"{path}: source file not found")
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceDataError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); "
                              "re-save it as UTF-8") from err
    if path.suffix.lower() != ".jsonl" and text.lstrip().startswith(("[", "{")) and not _is_jsonl(text):
        try:
            loaded = json.loads(text, object_pairs_hook=_object)
        except json.JSONDecodeError as err:
            raise SourceDataError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from err
        except RecursionError as err:
            raise SourceDataError(f"{path}: JSON nested deeper than a list of records can be (Python's reader gives "
                                  f"up); records are objects one level inside a list") from err
        if not isinstance(loaded, list):
            raise SourceDataError(f"{path}: expected a JSON list of records (or JSON Lines), found a JSON "
                                  f"{'object' if isinstance(loaded, dict) else type(loaded).__name__}")
        return list(enumerate(loaded)), []
    records, broken = [], []
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            records.append((index, json.loads(line, object_pairs_hook=_object)))
        except json.JSONDecodeError as err:
            broken.append({"index": index, "field": "(record)", "reason": "invalid_json", "detail": err.msg})
        except RecursionError:
            broken.append({"index": index, "field": "(record)", "reason": "invalid_json",
                           "detail": "nested deeper than a record can be"})
    return records, broken


def _is_jsonl(text: str) -> bool:
    """One JSON object per line (the first line parses on its own as an object)."""
    first = text.lstrip().split("\n", 1)[0]
    try:
        return isinstance(json.loads(first), dict) and "\n" in text.strip()
    except (json.JSONDecodeError, RecursionError):
        return False


def _unify(source: str, record: SourceRecord, video_path: Path, info: VideoInfo | None) -> Sample:
    key = hashlib.sha1(f"{record.media}\n{record.problem}".encode()).hexdigest()[:10]
    reference = extract(record.solution) if record.solution else None
    return Sample(
        sample_id=f"{source}-{key}", source=source, video_id=video_id(record.media),
        video_path=str(video_path), question=record.problem, options=record.options,
        problem_type=record.problem_type, answer=record.answer,
        reference_context=reference.context if reference else None,
        reference_thinking=reference.thinking if reference else None,
        metadata=record.metadata, video_info=asdict(info) if info else None,
    )


class _Reject(Exception):
    def __init__(self, field: str, reason: str, detail: str):
        self.field, self.reason, self.detail = field, reason, detail
        super().__init__(detail)


def _check_video(root: Path, media: str, field: str, policy: SamplingPolicy,
                 probed: dict[str, VideoInfo]) -> tuple[Path, VideoInfo | None]:
    """The video's path, confined to `root` and opened once; raises `_Reject` with the reason."""
    path = Path(os.path.normpath(os.path.abspath(root / media)))
    inside = Path(os.path.normpath(os.path.abspath(root)))
    if not path.is_relative_to(inside):
        raise _Reject(field, "outside_video_root", f"{media!r} resolves outside {inside}")
    if not path.resolve().is_relative_to(inside.resolve()):  # a link inside the root that points out of it
        raise _Reject(field, "outside_video_root", f"{media!r} is a link (or under one) to {path.resolve()}, "
                                                   f"outside {inside}")
    key = str(path)
    if key not in probed:
        try:
            exists = path.is_file()
        except OSError as err:  # e.g. a name longer than the file system allows
            raise _Reject(field, "bad_video_path", f"{media[:80]!r}: {err.strerror or err}") from err
        if not exists:
            if policy.on_missing_video == "keep":
                return path, None
            raise _Reject(field, "missing_video", f"no file at {path}")
        if path.stat().st_size == 0:
            raise _Reject(field, "unreadable_video", f"{path}: empty file (0 bytes)")
        try:
            info = probe(path)
        except MediaError as err:
            raise _Reject(field, "unreadable_video", str(err)) from err
        if info.num_frames <= 0:
            raise _Reject(field, "unreadable_video", f"{path}: no frames")
        probed[key] = info
    return path, probed[key]


def _load_source(source: str, cfg: SourceConfig, policy: SamplingPolicy,
                 probed: dict[str, VideoInfo]) -> tuple[list[Row], list[Row], int]:
    path = Path(cfg.path)
    root = Path(cfg.video_root or path.parent)
    if not path.is_file():
        raise SourceDataError(f"{path}: source file not found (data_sampling.sources.{source}.path)")
    records, broken = _read_records(path)
    samples, found = [], [{"source": source, "file": str(path), **bad} for bad in broken]
    for index, raw in records:
        reject = {"source": source, "file": str(path), "index": index}
        fmt = resolve(cfg.format, raw) if isinstance(raw, dict) else None
        if fmt is None:
            keys = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
            found.append(reject | {"field": "(record)", "reason": "unknown_format",
                                   "detail": f"no known format has these keys: {keys}"})
            continue
        if getattr(raw, "conflicts", ()):
            found.append(reject | {"field": ", ".join(raw.conflicts), "reason": "duplicate_key",
                                   "detail": f"the record gives {', '.join(map(repr, raw.conflicts))} twice with "
                                             f"different values; which one is meant is unclear"})
            continue
        try:
            record = SourceRecord.model_validate(fmt.convert(raw))
        except ValidationError as err:
            found += [reject | {"field": fmt.native_field.get(f.split(".")[0], f), "reason": "invalid_field",
                                "detail": msg} for f, msg in field_errors(err)]
            continue
        field = fmt.native_field.get("video", "video" if record.video else "path")
        try:
            video_path, info = _check_video(root, record.media, field, policy, probed)
        except _Reject as err:
            found.append(reject | {"field": err.field, "reason": err.reason, "detail": err.detail})
            continue
        samples.append(_unify(source, record, video_path, info).model_dump())
    return samples, found, len(records) + len(broken)


def load_sources(sources: dict[str, Row], sampling: DataSampling) -> tuple[list[Row], list[Row]]:
    """Read every selected source, validate each record and its video, and unify the valid ones.

    Returns (samples, rejects). A reject names source, file, record index, field and reason; with
    `policy.on_invalid: fail` the first one raises `SourceDataError` instead. A source that yields no
    usable record fails the run (`policy.on_empty_source: warn` lets it pass).
    """
    samples, rejects = [], []
    probed: dict[str, VideoInfo] = {}
    policy = sampling.policy
    for source, given in sources.items():
        cfg = SourceConfig.model_validate({k: v for k, v in given.items() if k in SourceConfig.model_fields})
        loaded, found, read = _load_source(source, cfg, policy, probed)
        if found and policy.on_invalid == "fail":
            first = found[0]
            raise SourceDataError(
                f"{first['file']} record {first['index']} field '{first['field']}': "
                f"{first['reason']} ({first['detail']}); {len(found)} bad record(s) in this file"
            )
        for reject in found:
            log.warning("Rejected %s record %s field %s: %s (%s)", reject["file"], reject["index"],
                        reject["field"], reject["reason"], reject["detail"])
        log.info("Source %s: %d records read, %d usable, %d rejected", source, read, len(loaded), len(found))
        if not loaded:
            top = ", ".join(f"{r} x{n}" for r, n in Counter(f["reason"] for f in found).most_common(3)) or "no records"
            message = (f"data_sampling source {source!r} ({cfg.path}, video_root {cfg.video_root or '(its folder)'}) "
                       f"yielded no usable record of {read}: {top}")
            if policy.on_empty_source != "warn":
                raise SourceDataError(message + "; fix the source or set data_sampling.policy.on_empty_source=warn")
            log.warning(message)
        samples += loaded
        rejects += found
    return samples, rejects


def _sample_key(sample: Row) -> tuple[str, str, tuple[str, ...]]:
    """What makes two samples the same: the video, the question and its options (whitespace and case aside)."""
    def norm(text: str) -> str:
        return " ".join(text.split()).casefold()

    return sample["video_id"], norm(sample["question"]), tuple(norm(o) for o in sample.get("options") or [])


def dedupe_samples(
    samples: list[Row], sources: dict[str, Row]
) -> tuple[list[Row], list[Row]]:
    """Keep one of each identical sample (same video, question and options): the first source in config order,
    then the smallest sample id. Other questions on the same video stay samples of their own; the train/val split
    keeps every video on one side."""
    rank = {name: i for i, name in enumerate(sources)}
    kept: dict[tuple, Row] = {}
    dropped = []
    for sample in sorted(samples, key=lambda s: (rank[s["source"]], s["sample_id"])):
        first = kept.setdefault(_sample_key(sample), sample)
        if first is not sample:
            dropped.append({"source": sample["source"], "file": sources[sample["source"]]["path"],
                            "index": None, "field": "problem", "reason": "duplicate_sample",
                            "detail": f"{sample['sample_id']} asks what {first['sample_id']} asks about video "
                                      f"{sample['video_id']}"})
    log.info("Dedupe: %d samples kept (%d videos), %d identical samples dropped", len(kept),
             len({s["video_id"] for s in kept.values()}), len(dropped))
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
    samples: list[Row], sources: dict[str, Row], n_samples: int, seed: int
) -> list[Row]:
    """Draw `n_samples` by source ratio, stratified by problem type within a source; same seed, same draw."""
    strata: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for sample in sorted(samples, key=lambda s: s["sample_id"]):
        strata[sample["source"]][sample["problem_type"]].append(sample)
    available = {name: sum(len(v) for v in strata[name].values()) for name in sources}
    ratios = {n: float(c["ratio"]) for n, c in sources.items()}
    quota = allocate(available, ratios, n_samples)
    drawn = []
    for name, want in quota.items():
        asked = round(n_samples * ratios[name] / sum(ratios.values()))
        if want < asked:
            log.warning("Source %s: ratio %.2f asks for %d of %d samples, only %d usable; %s", name, ratios[name],
                        asked, n_samples, available[name], "the others make up the rest" if len(quota) > 1 else
                        "the run samples fewer")
        by_type = strata[name]
        sizes = {t: len(v) for t, v in by_type.items()}
        for ptype, k in allocate(sizes, {t: float(n) for t, n in sizes.items()}, want).items():
            drawn += random.Random(f"{seed}:{name}:{ptype}").sample(by_type[ptype], k)
    if len(drawn) < n_samples:
        log.warning("Asked for %d samples, only %d usable", n_samples, len(drawn))
    return sorted(drawn, key=lambda s: (s["source"], s["sample_id"]))


def sampling_report(
    sources: dict[str, Row], loaded: list[Row], rejects: list[Row],
    duplicates: list[Row], sampled: list[Row],
) -> Row:
    """Counts per source, reasons for rejection, and the sampled set's make-up."""
    lengths = sorted(len(s["reference_thinking"] or "") for s in sampled)
    demo = any(s["demo"] for s in sources.values())
    by_source = dict(Counter(s["source"] for s in sampled))
    return {
        "summary": f"data_sampling: {len(sampled)} samples ({counts(by_source)}) from "
                   f"{'the synthetic demo corpus (no source configured)' if demo else 'your sources'}",
        "demo": demo,
        "sources": {name: s["path"] for name, s in sources.items()},
        "valid_records": dict(Counter(s["source"] for s in loaded)),
        "rejected": dict(Counter(f"{r['source']}/{r['reason']}" for r in rejects + duplicates)),
        "sampled": len(sampled),
        "sampled_by_source": by_source,
        "sampled_by_problem_type": dict(Counter(s["problem_type"] for s in sampled)),
        "with_reference_thinking": sum(1 for s in sampled if s["reference_thinking"]),
        "reference_thinking_chars": {"min": lengths[0], "median": lengths[len(lengths) // 2],
                                     "max": lengths[-1]} if lengths else {},
    }
