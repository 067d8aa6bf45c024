"""lora_training: base model (as configured, or demo_data's tiny one, built from the train split) -> LoRA
fine-tuning -> model registry."""

from kedro.pipeline import Node, Pipeline

from thinking_summarizer.pipelines.demo_data.pipeline import tiny_student
from thinking_summarizer.tracking.hook import stage_tag

from .nodes import prepare_base_model, release_student, train_student


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            tiny_student(),  # the tiny base's build is part of the training stage (its MLflow child run)
            Node(prepare_base_model, ["tiny_student", "params:lora_training"], "student_base",
                 name="prepare_base_model"),
            Node(train_student,
                 ["sft_train_chat", "sft_val_chat", "student_base", "params:lora_training",
                  "params:dataset_build.instruction", "summary_grammar"],
                 ["training_result", "training_tracking", "student_adapter"], name="train_student"),
            Node(release_student, ["training_result", "student_adapter", "params:lora_training"], "registered_student",
                 name="register_student"),  # saving to registered_student registers the model version
        ],
        tags=stage_tag("training"),
    )
