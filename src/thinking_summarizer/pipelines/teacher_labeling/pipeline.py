"""teacher_labeling: thinking records -> structured summaries (and rejects with reasons)."""

from kedro.pipeline import Node, Pipeline

from .nodes import label_thinking


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                label_thinking,
                ["thinking_records", "teacher", "params:teacher_labeling", "params:vocabulary", "params:summary_qc"],
                ["teacher_labels", "teacher_rejects", "teacher_usage"],
                name="label_thinking",
            )
        ]
    )
