"""Training speed of `lora_training.train_student`: tokens/s, s/step and peak memory.

    .venv/bin/python benchmarks/lora_training_throughput.py                       # tiny student, CPU
    python benchmarks/lora_training_throughput.py --full-size --steps 30          # random Qwen2.5-3B shape, GPU

`--full-size` builds a randomly initialised model of Qwen2.5-3B-Instruct's shape (no weights needed to measure
speed) and trains it with the design's knobs (batch 8 x accumulation 4, bf16 on GPU). The projection at the
end is the time for 3 epochs over 2,240 samples at the measured s/step (the target on one H100: 10 minutes).
"""

from __future__ import annotations

import argparse
import logging

from _common import chat_examples, params, scratch, updated

QWEN25_3B = {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
             "tie_word_embeddings": True, "rope_theta": 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full-size", action="store_true", help="a random Qwen2.5-3B-shaped base (for a GPU)")
    parser.add_argument("--samples", type=int, default=160)
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from thinking_summarizer.pipelines.dataset_build.nodes import summary_grammar
    from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_student
    from thinking_summarizer.pipelines.lora_training.nodes import prepare_base_model, train_student, trainer_settings

    tmp, conf = scratch(), params()
    cfg = updated(conf.lora_training, output_dir=str(tmp / "runs"), base_model=str(tmp / "base"),
                  trainer={"num_train_epochs": args.epochs})
    instruction = conf.dataset_build.instruction
    rows = chat_examples(args.samples + 16, instruction)
    train, val = Dataset.from_list(rows[:-16]), Dataset.from_list(rows[-16:])
    # speed does not depend on what the weights know: no pre-training
    recipes = updated(conf.tiny_models, student={"pretrain": {"steps": 0}, "trainer": {"num_train_epochs": args.epochs}})
    if args.full_size:
        # the tiny recipe's tokenizer (trained on these texts) with a full-size random model
        build_tiny_student(train, recipes, cfg.base_model)
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        shape = QWEN25_3B | {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        Qwen2ForCausalLM(Qwen2Config(**shape)).save_pretrained(cfg.base_model)
        tiny = {}
    else:
        tiny = build_tiny_student(train, recipes, cfg.base_model)
    base = prepare_base_model(tiny, cfg)
    grammar = summary_grammar(conf.vocabulary, conf.summary_qc)
    result, _, _ = train_student(train, val, base, cfg, instruction, grammar)  # no MLflow run: nothing is logged
    m = result["metrics"]
    settings = trainer_settings(cfg, base)
    per_step = settings["per_device_train_batch_size"] * settings["gradient_accumulation_steps"]
    design_steps = 3 * 2240 / per_step
    print(f"base: {'random Qwen2.5-3B shape' if args.full_size else base['base_model']} "
          f"({m['trainable_parameters']:,} trainable, {100 * m['trainable_fraction']:.2f}%)")
    print(f"{m['steps']} steps of {per_step} examples: {m['tokens_per_second']:.0f} tokens/s, "
          f"{m['seconds_per_step']:.3f} s/step, peak memory {m['peak_memory_mb']:.0f} MB")
    print(f"projected 3 epochs over 2,240 samples ({design_steps:.0f} steps): "
          f"{design_steps * m['seconds_per_step'] / 60:.1f} min (target on one H100: < 10 min)")


if __name__ == "__main__":
    main()
