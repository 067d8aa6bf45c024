"""The record's own reference chain (IntentTrain ships one): no model, the default run's generator."""

from __future__ import annotations

from thinking_summarizer.generators import Generation
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration


class ReferenceGenerator:
    model_id = "reference"

    @classmethod
    def from_config(cls, cfg: ThinkingGeneration, client: ClientPolicy) -> ReferenceGenerator:
        return cls()

    def generate(self, samples: list[Row]) -> list[Generation]:
        out = []
        for s in samples:
            if not s.get("reference_thinking"):
                out.append(Generation(s["sample_id"], error="generation_error: the record has no reference chain"))
                continue
            text = (f"<context>{s.get('reference_context') or ''}</context>"
                    f"<think>{s['reference_thinking']}</think><answer>{s.get('answer') or ''}</answer>")
            out.append(Generation(s["sample_id"], text, 0))  # nothing generated: the chain is the record's own
        return out
