"""The tiny student base's pre-training: what it measures about itself (docs/learning.md)."""

import random

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from thinking_summarizer.tiny_models import CHAT_SPECIALS, train_tokenizer
from thinking_summarizer.tiny_models.student import CHAT_TEMPLATE, _repeat_task, copy_accuracy, pretrain_copying

WORDS = "red blue green cup table dog woman man coat left right middle smiles frowns".split()
TEXTS = [" ".join(random.Random(i).choice(WORDS) for _ in range(30)) + "." for i in range(40)]


def _model(tokenizer, layers: int = 2) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def test_saying_back_random_runs_teaches_copying_and_the_build_measures_it():
    """The copy accuracy is measured on new runs: a random base scores near chance, one pre-trained on saying
    back runs of the texts' words copies them (the circuit forms after a plateau, hence the steps)."""
    tokenizer = train_tokenizer(TEXTS, 300, CHAT_SPECIALS, CHAT_TEMPLATE)
    cfg = {"seed": 0, "steps": 0, "repeat_steps": 500, "batch_size": 16, "learning_rate": 3e-3, "vocabulary": 100,
           "repeat_words": [6, 10]}
    probe = [_repeat_task(random.Random(99 + i), WORDS, cfg) for i in range(32)]
    before = copy_accuracy(_model(tokenizer), tokenizer, probe)
    model = _model(tokenizer)
    result = pretrain_copying(model, tokenizer, TEXTS, cfg)
    after = copy_accuracy(model, tokenizer, probe)
    assert before < 0.2
    assert after > before + 0.4 and result["copy_accuracy"] > 0.6  # 0.74 measured here, chance about 0.1
