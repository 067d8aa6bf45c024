"""Teachers turn a thinking into a structured summary; nodes use `build_teacher` and `Teacher.label_all`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

from thinking_summarizer.backends import create
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy, SummaryQC, Vocabulary
from thinking_summarizer.schemas.params.teacher import TeacherLabeling


@dataclass
class LabelOutcome:
    """What happened to one sample: labelled with a summary, or rejected with a reason."""

    sample_id: str
    status: str  # labelled | rejected
    summary: Row | None = None
    reason: str = ""
    detail: str = ""
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    calls: int = 0
    cached: bool = False

    def to_dict(self) -> Row:
        return asdict(self)


class Teacher(Protocol):
    model_id: str
    prompt_version: str

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        """Label (sample_id, thinking) pairs; one outcome per pair, in order."""


def build_teacher(cfg: TeacherLabeling, vocabulary: Vocabulary, qc: SummaryQC, client: ClientPolicy) -> Teacher:
    """The teacher named by `cfg.backend`; `client` is the shared OpenAI-client policy (`params:openai_client`)."""
    return create("teacher_labeling.backend", cfg.backend, cfg, vocabulary, qc, client)
