"""Throughput of the transformers backend of thinking_generation at several batch sizes.

    .venv/bin/python benchmarks/thinking_generation_throughput.py                 # tiny random thinker, CPU
    python benchmarks/thinking_generation_throughput.py --model PhilipC/HumanOmniV2 --samples 64   # a GPU

Every generation is forced to `--new-tokens` tokens so batch sizes compare like for like. Prints samples/s
and generated tokens/s per batch size, and each as a ratio to batch size 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from _common import params, updated

from thinking_summarizer.demo.corpus import write_corpus  # noqa: E402
from thinking_summarizer.generators.omni_transformers import OmniTransformersGenerator  # noqa: E402
from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_models  # noqa: E402
from thinking_summarizer.pipelines.data_sampling.nodes import load_sources  # noqa: E402
from thinking_summarizer.schemas.params.tiny import TinyModels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="hub id or path of a real thinker (default: the tiny one from conf/base)")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    conf = params()
    with tempfile.TemporaryDirectory() as root:
        os.chdir(root)  # tiny models are only built under a project's data/
        tmp = f"{root}/data"
        write_corpus(updated(conf.demo_data, root=f"{tmp}/demo", n_scenes=max(args.samples, 8)))
        sources = {name: {"path": f"{tmp}/demo/{file}", "video_root": f"{tmp}/demo/videos", "ratio": 1}
                   for name, file in (("intentbench", "intentbench.json"), ("daily_omni", "daily_omni.jsonl"),
                                      ("intenttrain", "intenttrain.json"))}
        sampling = updated(conf.data_sampling, policy={"on_invalid": "fail"})
        samples = load_sources(sources, sampling)[0][: args.samples]
        thinking = updated(conf.thinking_generation, transformers={"model": args.model or f"{tmp}/tiny-humanomni"},
                           generation={"max_new_tokens": args.new_tokens})
        if not args.model:  # the tiny one, as demo_data builds it
            build_tiny_models(TinyModels(thinker=conf.tiny_models.thinker), thinking, "")
        cfg = thinking.transformers
        generator = OmniTransformersGenerator(cfg, thinking.prompt, thinking.generation)
        generator.model.generation_config.min_new_tokens = args.new_tokens
        generator.generate(samples[:2])  # warm-up
        rates = {}
        for size in (int(b) for b in args.batch_sizes.split(",")):
            generator.cfg = generator.cfg.model_copy(update={"batch_size": size})
            started = time.perf_counter()
            results = generator.generate(samples)
            elapsed = time.perf_counter() - started
            assert not any(r.error for r in results), [r.error for r in results if r.error][:3]
            rates[size] = (len(results) / elapsed, sum(r.tokens for r in results) / elapsed)
    print(f"model: {cfg.model} on {generator.model.device} ({generator.model.dtype}); "
          f"{len(samples)} samples x {args.new_tokens} new tokens")
    base = rates[min(rates)]
    for size, (sps, tps) in rates.items():
        print(f"batch {size:>3}: {sps:8.2f} samples/s {tps:10.1f} tokens/s   "
              f"ratio to batch {min(rates)}: {sps / base[0]:.2f}x samples/s, {tps / base[1]:.2f}x tokens/s")


if __name__ == "__main__":
    main()
