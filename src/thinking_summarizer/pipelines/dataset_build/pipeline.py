"""dataset_build: teacher labels -> QC -> stratified split by video -> instruction and chat forms."""

from kedro.pipeline import Node, Pipeline

from .nodes import select_clean_examples, split_examples, summary_grammar, to_training_forms


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                select_clean_examples,
                ["teacher_labels", "teacher_rejects", "thinking_records", "sampled_samples", "params:vocabulary",
                 "params:summary_qc"],
                ["clean_examples", "dataset_rejects", "dataset_qc_report"],
                name="select_clean_examples",
            ),
            Node(split_examples, ["clean_examples", "params:dataset_build.split"],
                 ["train_examples", "val_examples", "split_report"], name="split_examples"),
            Node(to_training_forms, ["train_examples", "params:dataset_build.instruction"],
                 ["sft_train_instruction", "sft_train_chat"], name="format_train"),
            Node(to_training_forms, ["val_examples", "params:dataset_build.instruction"],
                 ["sft_val_instruction", "sft_val_chat"], name="format_val"),
            Node(summary_grammar, ["params:vocabulary", "params:summary_qc"], "summary_grammar",
                 name="summary_grammar"),
        ]
    )
