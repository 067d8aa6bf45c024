"""The record's own reference chain (IntentTrain ships one): no model, the default run's generator."""

from __future__ import annotations

from typing import Any

from thinking_summarizer.generators import Generation


class ReferenceGenerator:
    model_id = "reference"

    @classmethod
    def from_config(cls, cfg: dict[str, Any], client: dict[str, Any] | None) -> ReferenceGenerator:
        return cls()

    def generate(self, samples: list[dict[str, Any]]) -> list[Generation]:
        out = []
        for s in samples:
            if not s.get("reference_thinking"):
                out.append(Generation(s["sample_id"], error="generation_error: the record has no reference chain"))
                continue
            text = (f"<context>{s.get('reference_context') or ''}</context>"
                    f"<think>{s['reference_thinking']}</think><answer>{s.get('answer') or ''}</answer>")
            out.append(Generation(s["sample_id"], text, 0))  # nothing generated: the chain is the record's own
        return out
