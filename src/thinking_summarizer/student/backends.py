"""Where a student's summaries come from (`student_inference.backend`): `transformers` (this process),
`vllm` (vLLM's offline engine: the base model plus the adapter through a `LoRARequest`), or `openai` (a served
student, e.g. `vllm serve <base> --enable-lora --lora-modules student=<adapter>`, through the project's client).
`auto` takes vLLM where it is installed and a GPU is present, else transformers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Protocol

import torch

from thinking_summarizer.backends import create
from thinking_summarizer.errors import PreflightError, ServerUnreachableError
from thinking_summarizer.io.openai_client import CallFailed, OpenAICompatibleClient, client_settings
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy, ClientSettings, StudentInference, VLLMSettings
from thinking_summarizer.student import Inference, Summaries, load_student, read_card

CONF_KEY = "student_inference.openai"
BACKEND_KEY = "student_inference.backend"


class Summarizer(Protocol):
    card: Row  # base_model and instruction

    @property
    def instruction(self) -> str: ...

    def summarize(self, thinkings: list[str], batch_size: int, max_new_tokens: int) -> Summaries:
        """Greedy summaries, in order."""


def student_card(source: str) -> Row:
    """The card (base model, instruction) of a registered version or an adapter folder, without loading weights."""
    if not source.startswith("models:/"):
        return read_card(source)
    from mlflow import MlflowClient

    name, _, ref = source.removeprefix("models:/").partition("/")
    client = MlflowClient()
    if "@" in name:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        version = client.get_model_version(name, ref)
    return {"base_model": version.tags["base_model"], "instruction": version.tags["instruction"],
            "grammar": version.tags.get("grammar", "")}


def _messages(instruction: str, thinking: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": instruction}, {"role": "user", "content": thinking}]


class ServedStudent:
    """A student behind an OpenAI-compatible server; each request is one summary."""

    @classmethod
    def from_config(cls, source: str, cfg: StudentInference, client: ClientPolicy, device: str) -> ServedStudent:
        return cls(student_card(source), client_settings(client, cfg.openai, ClientSettings), cfg.constrained)

    def __init__(self, card: Row, cfg: ClientSettings, constrained: bool = True):
        self.card, self.cfg = card, cfg
        # vLLM's structured outputs hold the served student to the same grammar as the in-process one
        grammar = card.get("grammar") if constrained else None
        self.structured = {"structured_outputs": {"regex": grammar}} if grammar else {}

    @property
    def instruction(self) -> str:
        return self.card["instruction"]

    async def _all(self, thinkings: list[str], max_new_tokens: int) -> list[tuple[str, float, int] | CallFailed]:
        async with OpenAICompatibleClient(self.cfg, CONF_KEY) as client:

            async def one(thinking: str) -> tuple[str, float, int] | CallFailed:
                started = time.perf_counter()
                body = {"model": self.cfg.model, "messages": _messages(self.instruction, thinking),
                        "max_tokens": max_new_tokens, "temperature": 0.0, **self.structured}
                try:
                    reply, _ = await client.chat(body)
                except CallFailed as err:
                    return err
                return reply.content.strip(), time.perf_counter() - started, reply.usage["completion_tokens"]

            return list(await asyncio.gather(*(one(t) for t in thinkings)))

    def summarize(self, thinkings: list[str], batch_size: int, max_new_tokens: int) -> Summaries:
        results = asyncio.run(self._all(thinkings, max_new_tokens))
        failed = [r for r in results if isinstance(r, CallFailed)]
        if thinkings and len(failed) == len(thinkings):
            raise ServerUnreachableError(
                f"{CONF_KEY}: the student server at {self.cfg.base_url} answered no request "
                f"({failed[0].reason}: {failed[0].detail}); start it or fix base_url")
        done = [r if not isinstance(r, CallFailed) else ("", 0.0, 0) for r in results]
        return Summaries([r[0] for r in done], [r[1] for r in done], [r[2] for r in done])


class VLLMStudent:
    """The base model in vLLM's offline engine with the adapter applied per request (`LoRARequest`)."""

    @classmethod
    def from_config(cls, source: str, cfg: StudentInference, client: ClientPolicy, device: str) -> VLLMStudent:
        return cls(source, student_card(source), cfg.vllm, cfg.constrained)

    def __init__(self, source: str, card: Row, cfg: VLLMSettings, constrained: bool = True):
        if importlib.util.find_spec("vllm") is None:
            raise PreflightError("student_inference.backend=vllm needs the vllm package, which is not installed "
                                 "(`pip install vllm` on a GPU machine), or choose transformers or openai")
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        adapter, base = Path(source), card["base_model"]
        if source.startswith("models:/"):  # the registered model's own files: adapter, and a bundled base if any
            import mlflow

            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tempfile.mkdtemp()))
            adapter = local / "artifacts" / "adapter"
            base = str(local / "artifacts" / "base") if (local / "artifacts" / "base").is_dir() else base
        self.card, self.sampling = card, SamplingParams
        self.structured: Row = {}
        if constrained and card.get("grammar"):
            from vllm.sampling_params import StructuredOutputsParams

            self.structured = {"structured_outputs": StructuredOutputsParams(regex=card["grammar"])}
        self.llm = LLM(model=base, enable_lora=True, max_lora_rank=cfg.max_lora_rank,
                       gpu_memory_utilization=cfg.gpu_memory_utilization)
        self.lora = LoRARequest("student", 1, str(adapter))

    @property
    def instruction(self) -> str:
        return self.card["instruction"]

    def summarize(self, thinkings: list[str], batch_size: int, max_new_tokens: int) -> Summaries:
        started = time.perf_counter()
        outputs = self.llm.chat([_messages(self.instruction, t) for t in thinkings],
                                self.sampling(temperature=0.0, max_tokens=max_new_tokens, **self.structured),
                                lora_request=self.lora)
        elapsed = time.perf_counter() - started
        return Summaries([o.outputs[0].text.strip() for o in outputs], [elapsed] * len(outputs),
                         [len(o.outputs[0].token_ids) for o in outputs])


def transformers_student(source: str, cfg: StudentInference, client: ClientPolicy, device: str) -> Summarizer:
    """The student in-process: adapter merged into its base, batched greedy generation."""
    student = load_student(source, merge=True, device=device)
    student.inference = Inference(sort_by_length=cfg.sort_by_length, cache_implementation=cfg.cache_implementation,
                                  memory_fraction=cfg.memory_fraction, max_batch_size=cfg.max_batch_size,
                                  constrained=cfg.constrained)
    return student


def auto_student(source: str, cfg: StudentInference, client: ClientPolicy, device: str) -> Summarizer:
    """vLLM where it is installed and a GPU is there, else in-process."""
    name = "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "transformers"
    return create(BACKEND_KEY, name, source, cfg, client, device)


def build_summarizer(source: str, cfg: StudentInference, client: ClientPolicy, device: str = "auto") -> Summarizer:
    """The student at `source` (registry URI or adapter folder) through the configured backend."""
    return create(BACKEND_KEY, cfg.backend, source, cfg, client, device)
