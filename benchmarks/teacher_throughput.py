"""Teacher labelling throughput against a local OpenAI-compatible server with fixed latency.

    .venv/bin/python benchmarks/teacher_throughput.py [--samples 1000] [--latency 0.5]

Prints samples/s with the configured concurrency and one at a time, and their ratio (target: >= 30x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, params, updated

from thinking_summarizer.teachers import build_teacher  # noqa: E402


def rate(conf, teacher_cfg, n: int, tag: str) -> float:
    items = [(f"{tag}{i}", f"MARK-{i} run {tag}: a woman in a red coat smiles.") for i in range(n)]
    started = time.perf_counter()
    teacher = build_teacher(teacher_cfg, conf.vocabulary, conf.summary_qc, conf.openai_client)  # as the node does
    outcomes = teacher.label_all(items)
    elapsed = time.perf_counter() - started
    assert all(o.status == "labelled" for o in outcomes)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--serial-samples", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the configured one")
    args = parser.parse_args()
    conf = params()
    os.environ.setdefault("TEACHER_API_KEY", "benchmark-key")
    # the server runs in its own process, as a real one would, so it does not share this one's GIL
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tests.openai_stub import StubOpenAI; "
         f"print(StubOpenAI(latency={args.latency}).start(), flush=True); time.sleep(3600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        url = server.stdout.readline().strip()
        concurrent, serial = _measure(args, conf, url)
    finally:  # never leave the stub server running
        server.kill()
        server.wait()
    print(f"latency per request: {args.latency} s; client-side rate limits off")
    print(f"concurrency {args.concurrency or conf.teacher_labeling.openai.concurrency}: {concurrent:.1f} samples/s over {args.samples} samples")
    print(f"one at a time: {serial:.2f} samples/s over {args.serial_samples} samples")
    print(f"ratio: {concurrent / serial:.1f}x (target >= 30x)")


def _measure(args, conf, url: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        teacher = conf.teacher_labeling
        # the per-minute limits model a provider's quota; this measures concurrency, so they are off
        cfg = updated(teacher, backend="openai", openai={
            "base_url": url, "cache_path": f"{tmp}/cache.sqlite", "requests_per_minute": None,
            "tokens_per_minute": None, "concurrency": args.concurrency or teacher.openai.concurrency})
        concurrent = rate(conf, cfg, args.samples, "c")
        cfg = updated(cfg, openai={"concurrency": 1, "cache_path": f"{tmp}/serial.sqlite"})
        serial = rate(conf, cfg, args.serial_samples, "s")
    return concurrent, serial


if __name__ == "__main__":
    main()
