"""A tiny Qwen2 student base: a tokenizer trained on the training texts, random weights (with a copying circuit
written in when the recipe has `copy_circuit`: `copy_circuit.py`), then a short pre-training on generic tasks that
gives it the language of the thinkings: what a pretrained base brings and a random one lacks.

The tasks, never a summary: saying back runs of random words (copying), listing what follows each occurrence of
a cue word in a thinking (finding a place, then copying), and rewriting
windows of the thinkings as markdown lists of their own sentences and phrases (language and markdown). The build
logs the base's copy accuracy on new runs of random words (docs/learning.md). What a summary holds is left to LoRA.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import Qwen2Config, Qwen2ForCausalLM, PreTrainedTokenizerBase

from thinking_summarizer.tiny_models import CHAT_SPECIALS, train_tokenizer
from thinking_summarizer.tiny_models.copy_circuit import freeze_copy_circuit, wire_copy_circuit
from thinking_summarizer.schemas.params.tiny import Pretrain, TinyStudent

log = logging.getLogger(__name__)
# Qwen2.5's turn layout; {% generation %} marks the assistant tokens that carry the loss
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _repeat_task(rng: random.Random, pool: list[str], cfg: Pretrain) -> list[dict[str, str]]:
    """A run of random words of `pool`, said back word for word: nothing but copying predicts it, which is how a
    tiny model gets the induction heads that a pretrained base has (they form after a plateau of a few hundred
    steps, so the schedule must be long enough)."""
    low, high = cfg.repeat_words
    words = " ".join(rng.choice(pool) for _ in range(rng.randint(low, high)))
    return [{"role": "system", "content": "Repeat the text."}, {"role": "user", "content": words},
            {"role": "assistant", "content": words}]


def _follow_task(rng: random.Random, text: str) -> list[dict[str, str]]:
    """Each occurrence of a cue word of the text, in order, with the words that follow it: find, then copy."""
    words = text.split()
    cue, span = rng.choice(words), rng.randint(2, 8)
    found = [" ".join(words[i:i + span]) for i, word in enumerate(words) if word == cue][:6]
    return [{"role": "system", "content": f"List what follows each '{cue}', {span} words."},
            {"role": "user", "content": text}, {"role": "assistant", "content": "\n".join(f"- {f}" for f in found)}]


def _restructure_task(rng: random.Random, text: str) -> list[dict[str, str]]:
    """A window of a text, rewritten as one to three markdown blocks (a heading made of words of the text,
    then numbered sentences, bulleted phrases or `- word: phrase` lines, all copied from the window): the
    language and the markdown a pretrained base would bring."""
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


def _batch(tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, str]]],
           answer_only: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded ids; the loss on the assistant's tokens only (as in the LoRA stage), or on every token."""
    encoded = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
               for c in conversations]
    width = max(len(e["input_ids"]) for e in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), -100)
    for row, e in enumerate(encoded):
        seq = torch.tensor(e["input_ids"])
        input_ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
        answer = torch.tensor(e["assistant_masks"]).bool() if answer_only else torch.ones(len(seq), dtype=torch.bool)
        labels[row, :len(seq)] = seq.masked_fill(~answer, -100)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _task(kind: str, rng: random.Random, texts: list[str], words: list[str],
          cfg: Pretrain) -> list[dict[str, str]]:
    if kind == "repeat":
        return _repeat_task(rng, words, cfg)
    if kind == "follow":
        return _follow_task(rng, rng.choice(texts))
    if kind == "restructure":
        return _restructure_task(rng, rng.choice(texts))
    raise ValueError(f"tiny_models.student.pretrain.tasks: unknown task {kind!r} (repeat, follow, restructure)")


def pretrain(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, texts: list[str],
             cfg: Pretrain) -> dict[str, float]:
    """Full fine-tuning on a mix of the tasks (`tasks`: weights), the loss on the answers or on every token
    (`loss_on`); the final loss and the copy accuracy on new runs of random words."""
    rng = random.Random(cfg.seed)
    # the words of the texts, most used first; `vocabulary` caps how many the random runs draw from
    counts = Counter(w.strip(".,!?\"'").lower() for t in texts for w in t.split())
    words = [w for w, _ in counts.most_common(cfg.vocabulary) if w]
    kinds, weights = zip(*cfg.tasks.items())
    steps, warmup = cfg.steps, max(1, int(cfg.steps * 0.1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                                  weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    started, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in tqdm(range(steps), desc="pre-training tiny student base", unit="step"):
        batch = [_task(kind, rng, texts, words, cfg) for kind in rng.choices(kinds, weights, k=cfg.batch_size)]
        loss = model(**_batch(tokenizer, batch, answer_only=cfg.loss_on == "answer")).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    accuracy = copy_accuracy(model, tokenizer, [_repeat_task(rng, words, cfg) for _ in range(64)])
    log.info("Tiny student base pre-trained: %d steps in %.0f s, final loss %.3f, copy accuracy on new runs of "
             "random words %.3f", steps, time.perf_counter() - started, loss.item(), accuracy)
    return {"final_loss": round(loss.item(), 4), "copy_accuracy": round(accuracy, 4)}


@torch.no_grad()
def copy_accuracy(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase,
                  conversations: list[list[dict[str, str]]]) -> float:
    """Share of the answer tokens the model predicts right (teacher-forced) when it says back new runs of random
    words: only a model that copies gets them."""
    model.eval()
    batch = _batch(tokenizer, conversations)
    predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
    target, guess = batch["labels"][:, 1:], predicted[:, :-1]
    keep = target != -100
    model.train()
    return int((guess[keep] == target[keep]).sum()) / max(1, int(keep.sum()))


def tiny_qwen2(tokenizer: PreTrainedTokenizerBase, recipe: TinyStudent) -> Qwen2ForCausalLM:
    """A random Qwen2 of the recipe's size, with the copying circuit written in when the recipe has one."""
    size = recipe.model
    torch.manual_seed(recipe.seed)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=size.hidden_size, intermediate_size=3 * size.hidden_size,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        max_position_embeddings=size.max_positions, tie_word_embeddings=size.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": size.rope_theta},
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    if recipe.copy_circuit:
        wire_copy_circuit(model, recipe.copy_circuit, recipe.seed)
    return model


def build_tiny_student(path: Path, recipe: TinyStudent, vocabulary_texts: list[str], copy_texts: list[str]) -> None:
    """A tokenizer trained on `vocabulary_texts`, a random Qwen2 of the recipe's size, pre-trained on
    `copy_texts` (when the recipe asks for steps) around its copying circuit."""
    tokenizer = train_tokenizer(vocabulary_texts, recipe.vocab_size, CHAT_SPECIALS, CHAT_TEMPLATE)
    model = tiny_qwen2(tokenizer, recipe)
    if recipe.pretrain.steps:
        hooks = freeze_copy_circuit(model) if recipe.copy_circuit else []
        pretrain(model, tokenizer, copy_texts, recipe.pretrain)
        for hook in hooks:
            hook.remove()
        model.requires_grad_(True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
