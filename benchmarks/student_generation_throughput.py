"""Student summaries/s at batch sizes 1, 8 and 32 (left padding, greedy), as ratios to batch 1.

    .venv/bin/python benchmarks/student_generation_throughput.py                        # tiny student, CPU
    .venv/bin/python benchmarks/student_generation_throughput.py --student models:/thinking-summarizer-lora@champion
    python benchmarks/student_generation_throughput.py --full-size                      # random Qwen2.5-3B, GPU

Every summary is forced to `--new-tokens` tokens, so batch sizes compare like for like (a merged LoRA adapter
costs nothing at inference, so the base model's speed is the student's). Target for a 3B student on one H100:
at least 50 summaries/s.
"""

from __future__ import annotations

import argparse
import logging
import time

from _common import chat_examples, params, scratch, updated
from lora_training_throughput import QWEN25_3B


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--student", help="registry URI or adapter dir (default: a tiny student built here)")
    parser.add_argument("--full-size", action="store_true", help="a random Qwen2.5-3B-shaped model (for a GPU)")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", default="1,8,32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_student
    from thinking_summarizer.student import load_student, untrained

    conf = params()
    instruction = conf.dataset_build.instruction
    rows = chat_examples(args.samples, instruction)
    thinkings = [r["messages"][1]["content"] for r in rows]
    if args.student:
        student = load_student(args.student, merge=True)
    else:
        base_model = str(scratch() / "base")
        # speed does not depend on what the weights learned: no pre-training
        build_tiny_student(Dataset.from_list(rows), updated(conf.tiny_models, student={"pretrain": {"steps": 0}}),
                           base_model)
        if args.full_size:
            tokenizer = AutoTokenizer.from_pretrained(base_model)
            shape = QWEN25_3B | {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
            Qwen2ForCausalLM(Qwen2Config(**shape)).save_pretrained(base_model)
        student = untrained(base_model, instruction)
    student.model.generation_config.min_new_tokens = args.new_tokens
    student.summarize(thinkings[:2], 2, 8)  # warm-up
    rates = {}
    for size in (int(b) for b in args.batch_sizes.split(",")):
        started = time.perf_counter()
        out = student.summarize(thinkings, size, args.new_tokens)
        rates[size] = len(out.texts) / (time.perf_counter() - started)
    print(f"student: {args.student or ('random Qwen2.5-3B shape' if args.full_size else 'tiny')} on "
          f"{student.model.device} ({student.model.dtype}); {len(thinkings)} thinkings x {args.new_tokens} new tokens")
    base = rates[min(rates)]
    for size, rate in rates.items():
        print(f"batch {size:>3}: {rate:8.2f} summaries/s   ratio to batch {min(rates)}: {rate / base:.2f}x")


if __name__ == "__main__":
    main()
