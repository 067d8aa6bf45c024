"""HumanOmniV2 behind one interface: `Generator.generate(samples) -> [Generation]`, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from thinking_summarizer.backends import create
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration, ThinkingPrompt


@dataclass
class Generation:
    """Raw output for one sample, or the error that prevented it."""

    sample_id: str
    raw_text: str = ""
    tokens: int = 0
    error: str = ""  # "unreadable_video: ..." or "generation_error: ..."


class Generator(Protocol):
    model_id: str

    def generate(self, samples: list[Row]) -> list[Generation]:
        """One generation per sample, in order; errors are returned, never raised."""


def user_text(sample: Row, prompt: ThinkingPrompt, with_audio: bool) -> str:
    """The question as HumanOmniV2 was trained to read it: options listed, then the answer instruction."""
    question = sample["question"]
    if sample["problem_type"] in ("multiple choice", "emer_ov_mc"):
        question += " Options:\n" + "".join(f"{o}\n" for o in sample["options"])
    text = question + prompt.type_instructions[sample["problem_type"]]
    return (prompt.audio_preamble if with_audio else "") + text


def build_generator(cfg: ThinkingGeneration, client: ClientPolicy) -> Generator:
    """The generator named by `cfg.backend`; `client` is the shared OpenAI-client policy (`params:openai_client`)."""
    return create("thinking_generation.backend", cfg.backend, cfg, client)
