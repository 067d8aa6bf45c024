"""Tiny random models built offline with the real classes, for tests and the CPU default run.

Each builder writes an ordinary `save_pretrained` directory that the adapters then load with
`from_pretrained`, exactly as they load a real checkpoint. `ensure_built` caches it: a directory
built from the same recipe is reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from thinking_summarizer.io.hashing import content_hash
from thinking_summarizer.schemas.records import Row
from thinking_summarizer.schemas.params.thinking import ThinkingPrompt
from thinking_summarizer.schemas.params.tiny import TinySam3, TinyStudent, TinyThinker

log = logging.getLogger(__name__)
RECIPE_FILE = "tiny_recipe.json"
BUILDING_MARKER = ".tiny_build_in_progress"
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def ensure_built(path: str | Path, recipe: Row, build: Callable[[Path], None]) -> bool:
    """Build into `path` unless a build of the same recipe is already there; True when `path` now holds the
    project's tiny model.

    Only a folder this project built (it holds the recipe marker) is ever replaced, and a new one is built only
    under the project's `data/`. Anything else at `path` (a user's own model) is left untouched for the caller
    to load, and a missing path elsewhere is left missing, so the caller's "not found" names it."""
    path = Path(path)
    marker = path / RECIPE_FILE
    digest = content_hash(recipe)
    if marker.is_file():
        if json.loads(marker.read_text()).get("hash") == digest:
            return True
    elif path.exists():
        log.warning("%s was not built by this project (no %s): using it as it is, the tiny recipe does not apply",
                    path, RECIPE_FILE)
        return False
    elif not _inside(path, Path.cwd() / "data"):
        log.warning("%s does not exist and is outside data/: no tiny model is built there", path)
        return False
    log.info("Building tiny model at %s (recipe %s)", path, digest)
    staging = path.with_name(path.name + ".building")
    if staging.exists() and not (staging / BUILDING_MARKER).is_file():
        raise FileExistsError(f"{staging} exists and was not left by a build of this project (no {BUILDING_MARKER}):"
                              f" move it away to build the tiny model at {path}")
    shutil.rmtree(staging, ignore_errors=True)  # a killed build of ours
    staging.mkdir(parents=True)
    (staging / BUILDING_MARKER).touch()
    build(staging)
    (staging / RECIPE_FILE).write_text(json.dumps({"hash": digest, "recipe": recipe}, indent=1))
    (staging / BUILDING_MARKER).unlink()
    shutil.rmtree(path, ignore_errors=True)  # only ever a folder this project built (it had the marker)
    staging.rename(path)  # a killed build never leaves a half-written model behind
    return True


QWEN_ROLES = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


def train_tokenizer(texts: Iterable[str], vocab_size: int, specials: list[str], chat_template: str | None = None,
                    named_specials: dict[str, str] | None = None,
                    roles: dict[str, str] = QWEN_ROLES) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `texts` with `specials`; `roles` says which is eos, pad (Qwen's by default)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, **roles, chat_template=chat_template, extra_special_tokens=named_specials or {},
    )


def build_thinker(path: str, recipe: TinyThinker, prompt: ThinkingPrompt) -> bool:
    """The tiny HumanOmniV2 stand-in at `path`, its tokenizer trained on the prompt's own words."""
    from thinking_summarizer.tiny_models.omni import build_tiny_omni

    texts = [prompt.system, *prompt.type_instructions.values(), "<context> </context><think> </think><answer>"]
    return ensure_built(path, recipe.model_dump(mode="json"), lambda folder: build_tiny_omni(folder, recipe, texts))


def build_sam3(path: str, recipe: TinySam3) -> bool:
    """The tiny SAM3 stand-in at `path`, its prompt tokenizer trained on the recipe's prompt words."""
    from thinking_summarizer.tiny_models.sam3 import build_tiny_sam3

    return ensure_built(path, recipe.model_dump(mode="json"),
                        lambda folder: build_tiny_sam3(folder, recipe, recipe.prompt_texts))


def build_student(path: str, recipe: TinyStudent, conversations: list[list[dict[str, str]]]) -> bool:
    """The tiny student base at `path`: its tokenizer trained on the train split's turns, pre-trained on its
    thinkings (never their summaries). Rebuilt when the recipe (but its trainer knobs) or the split changes."""
    from thinking_summarizer.tiny_models.student import build_tiny_student

    thinkings = [m["content"] for c in conversations for m in c if m["role"] == "user"]
    vocabulary = [m["content"] for c in conversations for m in c]
    key = recipe.model_dump(mode="json", exclude={"trainer"}) | {"data": content_hash(vocabulary)}
    return ensure_built(path, key, lambda folder: build_tiny_student(folder, recipe, vocabulary, thinkings))


def announce_stand_in(built: Row, name: str, role: str) -> None:
    """Say so when the model a node is about to load is the tiny random one demo_data built (`built`, its
    dataset): what it writes shows that the chain runs, not what the real model would write."""
    if built.get("model") == name:
        log.info("%s is the tiny random %s demo_data built: a stand-in, its outputs are not a real model's",
                 name, role)
