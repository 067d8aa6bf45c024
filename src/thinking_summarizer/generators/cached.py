"""HumanOmniV2's thinking through the one content-keyed cache: a video and question already thought about (by
thinking_generation or video_segmentation, under the same model, prompt and sampling) is never generated again."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from pathlib import Path

from tqdm.auto import tqdm

from thinking_summarizer.io.model_datasets import Thinker
from thinking_summarizer.io.result_cache import ResponseCache, request_key
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _media_digest(path: Path, size: int, mtime_ns: int) -> str:
    """The video's SHA-256, read in blocks (never whole into memory), once per file version in this process."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _request(model_id: str, cfg: ThinkingGeneration, sample: Row) -> Row:
    """Everything a generation depends on: model, prompt, sampling knobs, the media bytes and the question."""
    path = Path(sample["video_path"])
    stat = path.stat() if path.is_file() else None
    media = _media_digest(path, stat.st_size, stat.st_mtime_ns) if stat else f"missing:{path}"
    return {"model": model_id, "prompt": cfg.prompt, "generation": cfg.generation, "media": media,
            "question": [sample["question"], sample["options"], sample["problem_type"],
                         sample.get("reference_thinking")]}


def generate_cached(samples: list[Row], cache: ResponseCache, thinker: Thinker, label: str = "thinking") -> list[Row]:
    """One record per sample, in order (sample_id, generator_id, raw_text, tokens, error); finished ones come
    from the cache, new ones are written to it at once. A transient failure keeps its own message and is asked
    again on a rerun; a configuration error from a server stops the run."""
    cfg = thinker.settings
    keys = {s["sample_id"]: request_key(_request(thinker.model_id, cfg, s)) for s in samples}
    # the key is the content, so a hit may have been generated for a sample of another id (same video and question)
    done = {s["sample_id"]: hit | {"sample_id": s["sample_id"]}
            for s in samples if (hit := cache.get(keys[s["sample_id"]])) is not None}
    todo = [s for s in samples if s["sample_id"] not in done]
    log.info("%s: %d samples, %d already generated", label, len(samples), len(samples) - len(todo))
    started, tokens = time.perf_counter(), 0
    chunk = cfg.checkpoint_every
    try:
        with tqdm(total=len(todo), desc=label, unit="sample") as bar:
            for start in range(0, len(todo), chunk):
                for result in thinker.generator.generate(todo[start:start + chunk]):
                    record = {"sample_id": result.sample_id, "generator_id": thinker.model_id,
                              "raw_text": result.raw_text, "tokens": result.tokens, "error": result.error}
                    if not result.error.startswith("generation_error"):  # transient: tried again on a rerun
                        cache.put(keys[result.sample_id], record)
                    done[result.sample_id] = record
                    tokens += result.tokens
                    bar.update()
    finally:
        cache.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    if todo:
        log.info("%s: generated %d in %.1f s (%.2f samples/s, %.1f tokens/s)", label, len(todo), elapsed,
                 len(todo) / elapsed, tokens / elapsed)
    return [done[s["sample_id"]] for s in samples]
