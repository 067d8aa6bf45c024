"""The student as a node receives it (the `students` catalog entry): every student it can ask for, loaded through
the configured backend (`student_inference`), and the registry's aliases, without the node touching MLflow."""

from __future__ import annotations

from thinking_summarizer.schemas.params.shared import ClientPolicy, StudentInference
from thinking_summarizer.student import Student, untrained
from thinking_summarizer.student.backends import Summarizer, build_summarizer
from thinking_summarizer.student.registry import version_by_alias


class StudentLoader:
    """Students by source (an adapter folder or a registry URI), the version behind an alias, the untrained base."""

    def __init__(self, inference: StudentInference, client: ClientPolicy):
        self.inference, self.client = inference, client

    @property
    def backend(self) -> str:
        return self.inference.backend

    def load(self, source: str, device: str = "auto") -> Summarizer:
        """The student at `source` (`models:/name/3`, `models:/name@alias` or an adapter folder)."""
        return build_summarizer(source, self.inference, self.client, device)

    def version(self, name: str, alias: str) -> str | None:
        """The registered version `name@alias` points at, None when there is none yet."""
        return version_by_alias(name, alias)

    def untrained(self, like: Summarizer, device: str = "auto") -> Student:
        """`like`'s base model without its adapter, prompted and decoded the same way."""
        base = untrained(like.card["base_model"], like.instruction, device)
        base.card["grammar"] = like.card.get("grammar")
        return base
