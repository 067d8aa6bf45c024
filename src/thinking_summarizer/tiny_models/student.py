"""A tiny Qwen2 student base: a tokenizer trained on the training texts, random weights, then a short
pre-training on a generic copying task so that, like a real pretrained base, it can quote its input and
write markdown lists.

The copying task never sees a summary: the model learns to rewrite a passage as headed lists of its own
sentences and phrases. Which sections a summary has, and what goes in them, is left for LoRA to learn.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import Qwen2Config, Qwen2ForCausalLM, PreTrainedTokenizerBase

from thinking_summarizer.tiny_models import CHAT_SPECIALS, train_tokenizer

log = logging.getLogger(__name__)
# Qwen2.5's turn layout; {% generation %} marks the assistant tokens that carry the loss
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _copy_task(rng: random.Random, text: str) -> list[dict[str, str]]:
    """A window of a text, rewritten as one to three markdown blocks (a heading made of words of the text,
    then numbered sentences, bulleted phrases or `- word: phrase` lines, all copied from the window)."""
    sentences = _SENTENCE.split(text)
    size = rng.randint(4, 7)
    start = rng.randrange(max(1, len(sentences) - size))
    window = sentences[start:start + size]
    words = " ".join(window).split()

    def phrases(count: int) -> list[str]:
        spans = []
        for _ in range(count):
            at = rng.randrange(max(1, len(words) - 10))
            spans.append(" ".join(words[at:at + rng.randint(3, 10)]))
        return spans

    blocks = []
    for _ in range(rng.randint(1, 3)):
        heading = "## " + " ".join(rng.sample(words, min(len(words), rng.randint(1, 2)))).strip(".,").capitalize()
        kind = rng.random()
        if kind < 0.4:
            picked = sorted(rng.sample(range(len(window)), min(len(window), rng.randint(1, 3))))
            body = [f"{i}. {window[j]}" for i, j in enumerate(picked, 1)]
        elif kind < 0.7:
            body = [f"- {p}" for p in phrases(rng.randint(2, 4))]
        else:
            body = [f"- {rng.choice(words).strip('.,').lower()}: {p}" for p in phrases(rng.randint(2, 4))]
        blocks.append("\n".join([heading, *body]))
    return [{"role": "system", "content": "Restructure the text."}, {"role": "user", "content": " ".join(window)},
            {"role": "assistant", "content": "\n\n".join(blocks)}]


def _batch(tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, str]]]) -> dict[str, torch.Tensor]:
    ids = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in conversations]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, :len(seq)], mask[row, :len(seq)] = torch.tensor(seq), 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": input_ids.masked_fill(mask == 0, -100)}


def pretrain_copying(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                     cfg: dict[str, Any]) -> float:
    """Full fine-tuning on the copying task (loss on every token); returns the final loss."""
    rng = random.Random(cfg["seed"])
    steps, warmup = cfg["steps"], max(1, int(cfg["steps"] * 0.1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    started, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in tqdm(range(steps), desc="pre-training tiny student base", unit="step"):
        loss = model(**_batch(tokenizer, [_copy_task(rng, rng.choice(texts)) for _ in range(cfg["batch_size"])])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    log.info("Tiny student base pre-trained: %d steps in %.0f s, final copy loss %.3f", steps,
             time.perf_counter() - started, loss.item())
    return loss.item()


def build_tiny_student(path: Path, recipe: dict[str, Any], vocabulary_texts: list[str], copy_texts: list[str]) -> None:
    """A tokenizer trained on `vocabulary_texts`, a random Qwen2 of the recipe's size, pre-trained to copy
    phrases of `copy_texts` (when the recipe asks for steps)."""
    tokenizer = train_tokenizer(vocabulary_texts, recipe["vocab_size"], CHAT_SPECIALS, CHAT_TEMPLATE)
    size = recipe["model"]
    torch.manual_seed(recipe["seed"])
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=size["hidden_size"], intermediate_size=3 * size["hidden_size"],
        num_hidden_layers=size["layers"], num_attention_heads=size["heads"], num_key_value_heads=size["kv_heads"],
        max_position_embeddings=size["max_positions"], tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    if recipe["pretrain"]["steps"]:
        pretrain_copying(model, tokenizer, copy_texts, recipe["pretrain"])
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
