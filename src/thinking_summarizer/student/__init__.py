"""The student summariser: a causal LM plus a LoRA adapter, prompted with the training instruction.

`load_student(source)` takes a registry URI (`models:/name/3`, `models:/name@champion`) or a local
adapter directory; `Student.summarize` writes summaries in batches (left padding, greedy). How it fills the
hardware is `Inference`: batches of similar prompt length, a batch size from free GPU memory, and a static KV
cache (which transformers compiles into one decode graph on a GPU). `build_summarizer` picks the backend:
this in-process model, vLLM's offline engine, or a served student behind the project's OpenAI client.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoConfig, AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList, PretrainedConfig, PreTrainedModel,
    PreTrainedTokenizerBase,
)

from thinking_summarizer.runtime.torch_runtime import resolve_device, resolve_dtype

log = logging.getLogger(__name__)
CARD = "summarizer.json"  # written beside the adapter: base model, instruction, generation defaults


@dataclass
class Summaries:
    texts: list[str]
    seconds: list[float]  # per sample: the time of the batch it was written in
    new_tokens: list[int]


@dataclass
class Inference:
    """How a student generates (`student_inference` in conf); greedy output does not depend on any of it."""

    sort_by_length: bool = True          # batches of similar length waste less compute on padding
    cache_implementation: str = "dynamic"  # static: a fixed-size KV cache, compiled on a GPU
    memory_fraction: float = 0.0         # > 0 on a GPU: batch size from this share of free memory
    max_batch_size: int = 256
    constrained: bool = True             # held to the card's format grammar (`student.constrained`)


class Student:
    """A model (adapter merged or not) with its tokenizer and the instruction it was trained with."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, card: dict[str, Any],
                 inference: Inference | None = None):
        self.model, self.tokenizer, self.card = model.eval(), tokenizer, card
        self.inference = inference or Inference()
        self.tokenizer.padding_side = "left"
        self._grammar: Any = None

    def grammar(self) -> Any:
        """The compiled format grammar when decoding is constrained and the card has one, else None."""
        if not (self.inference.constrained and self.card.get("grammar")):
            return None
        if self._grammar is None:
            from thinking_summarizer.student.constrained import FormatGrammar

            self._grammar = FormatGrammar(self.card["grammar"], self.tokenizer, self.model.config.vocab_size)
        return self._grammar

    @property
    def instruction(self) -> str:
        return self.card["instruction"]

    def prompts(self, thinkings: list[str]) -> list[str]:
        return [self.tokenizer.apply_chat_template(
            [{"role": "system", "content": self.instruction}, {"role": "user", "content": t}],
            tokenize=False, add_generation_prompt=True) for t in thinkings]

    @torch.inference_mode()
    def logits(self, thinking: str) -> torch.Tensor:
        """Next-token logits over the prompt (what the registry check compares)."""
        batch = self.tokenizer(self.prompts([thinking]), return_tensors="pt").to(self.model.device)
        return self.model(**batch).logits.float().cpu()

    def batch_size(self, asked: int, longest: int, max_new_tokens: int) -> int:
        """`asked`, or on a GPU with `memory_fraction` set, as many sequences as their KV cache fits in that
        share of the free memory."""
        if self.inference.memory_fraction <= 0 or self.model.device.type != "cuda":
            return asked
        config = self.model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * self.model.dtype.itemsize
        free, _ = torch.cuda.mem_get_info(self.model.device)
        fits = int(free * self.inference.memory_fraction // (per_token * (longest + max_new_tokens)))
        return max(1, min(fits, self.inference.max_batch_size))

    @torch.inference_mode()
    def summarize(self, thinkings: list[str], batch_size: int, max_new_tokens: int) -> Summaries:
        """Greedy summaries of `thinkings`, in their order."""
        prompts = self.prompts(thinkings)
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i]) if self.inference.sort_by_length else \
            list(range(len(prompts)))
        size = self.batch_size(batch_size, max(lengths, default=0), max_new_tokens)
        texts, seconds, tokens = [""] * len(prompts), [0.0] * len(prompts), [0] * len(prompts)
        pad = self.tokenizer.pad_token_id
        extra = {"cache_implementation": "static"} if self.inference.cache_implementation == "static" else {}
        grammar = self.grammar()
        for start in range(0, len(order), size):
            chosen = order[start:start + size]
            started = time.perf_counter()
            batch = self.tokenizer([prompts[i] for i in chosen], return_tensors="pt", padding=True).to(self.model.device)
            if grammar is not None:
                extra["logits_processor"] = LogitsProcessorList([grammar.processor()])
            generated = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                            pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id, **extra)
            new = generated[:, batch["input_ids"].shape[1]:]
            elapsed = time.perf_counter() - started
            for i, text, row in zip(chosen, self.tokenizer.batch_decode(new, skip_special_tokens=True), new):
                texts[i], seconds[i], tokens[i] = text.strip(), elapsed, int((row != pad).sum())
        return Summaries(texts, seconds, tokens)


def read_card(adapter_dir: str | Path) -> dict[str, Any]:
    path = Path(adapter_dir) / CARD
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: not a student adapter directory (no {CARD})")
    return json.loads(path.read_text())


def base_not_found(name_or_path: str, err: Exception) -> FileNotFoundError:
    """The error for a base model that cannot be loaded: a folder that holds no model, or a name neither on
    this machine nor reachable on the hub."""
    if Path(name_or_path).is_dir():
        return FileNotFoundError(f"base model {name_or_path!r} is a folder but holds no loadable model (left as it "
                                 f"is; point lora_training.base_model at a model folder or hub id): {err}")
    return FileNotFoundError(
        f"base model {name_or_path!r} not found: it is neither a local model directory nor in the Hugging Face "
        f"cache (this machine may be offline; download it or point lora_training.base_model elsewhere): {err}")


def base_config(name_or_path: str) -> PretrainedConfig:
    """The base model's config (its architecture, without loading weights), with a clear error when it cannot be
    found."""
    try:
        return AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise base_not_found(name_or_path, err) from err


def load_base(name_or_path: str, device: str = "auto", dtype: str = "auto") -> PreTrainedModel:
    """The base causal LM, with a clear error when it cannot be found."""
    target = resolve_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype, target))
    except (OSError, ValueError) as err:
        raise base_not_found(name_or_path, err) from err
    return model.to(target)


def from_adapter(adapter_dir: str | Path, base_dir: str | Path | None = None, merge: bool = False,
                 device: str = "auto", dtype: str = "auto") -> Student:
    """A student from an adapter directory; the base comes from `base_dir` or the adapter's card."""
    card = read_card(adapter_dir)
    base = load_base(str(base_dir or card["base_model"]), device, dtype)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    if merge:
        model = model.merge_and_unload()
    return Student(model, AutoTokenizer.from_pretrained(str(adapter_dir)), card)


def untrained(base_model: str, instruction: str, device: str = "auto", dtype: str = "auto") -> Student:
    """The base model without an adapter, prompted the same way (the 'before training' reference)."""
    return Student(load_base(base_model, device, dtype), AutoTokenizer.from_pretrained(base_model),
                   {"base_model": base_model, "instruction": instruction})


def load_student(source: str, merge: bool = False, device: str = "auto", dtype: str = "auto") -> Student:
    """`models:/<name>/<version>`, `models:/<name>@<alias>` or a local adapter directory."""
    if source.startswith("models:/"):
        from thinking_summarizer.student.registry import load_registered

        return load_registered(source, merge=merge, device=device, dtype=dtype)
    return from_adapter(source, merge=merge, device=device, dtype=dtype)
