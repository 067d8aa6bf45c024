"""Every model-facing backend a stage can name in conf (`<key>: <name>`), in one table, the way lm-eval keeps one
model registry: the parameter check reads the names from here and `create` builds the chosen one. Entries are
import paths of `from_config` factories, so a backend's heavy dependencies (torch, vLLM) load only when chosen.

Each stage calls its factories with the same arguments: generators `(section, client)`, teachers
`(section, vocabulary, qc, client)`, students `(source, section, client, device)`, where `client` is the shared
OpenAI-client policy (`params:openai_client`, merged under a section's own by `io.openai_client.client_settings`)."""

from __future__ import annotations

import importlib
from typing import Any

from thinking_summarizer.errors import ConfigurationError

REGISTRY: dict[str, dict[str, str]] = {
    "thinking_generation.backend": {
        "reference": "thinking_summarizer.generators.reference:ReferenceGenerator.from_config",
        "transformers": "thinking_summarizer.generators.omni_transformers:OmniTransformersGenerator.from_config",
        "openai": "thinking_summarizer.generators.openai_server:OpenAIServerGenerator.from_config",
    },
    "teacher_labeling.backend": {
        "extractive": "thinking_summarizer.teachers.extractive:ExtractiveTeacher.from_config",
        "openai": "thinking_summarizer.teachers.openai_teacher:OpenAITeacher.from_config",
        "openai_batch": "thinking_summarizer.teachers.openai_teacher:OpenAIBatchTeacher.from_config",
    },
    "student_inference.backend": {
        "auto": "thinking_summarizer.student.backends:auto_student",  # vllm on a GPU where installed
        "transformers": "thinking_summarizer.student.backends:transformers_student",
        "vllm": "thinking_summarizer.student.backends:VLLMStudent.from_config",
        "openai": "thinking_summarizer.student.backends:ServedStudent.from_config",
    },
}


def unknown_backend(key: str, name: str) -> str | None:
    """The error for a backend name `key` does not know, or None."""
    known = REGISTRY[key]
    return None if name in known else f"{key}: unknown backend {name!r} (one of {', '.join(sorted(known))})"


def create(key: str, name: str, *args: Any) -> Any:
    """The backend registered as `name` under `key`, built from the stage's arguments."""
    if error := unknown_backend(key, name):
        raise ConfigurationError(error)
    module, _, attribute = REGISTRY[key][name].partition(":")
    factory: Any = importlib.import_module(module)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory(*args)

