"""demo_data: the synthetic demo corpus (written only when no source is configured; its ground truth is keyed for
the sampled videos by data_sampling, once sampling has succeeded) and the tiny random models that stand in for the
real ones on a CPU (`tiny_models`). The tiny student base needs the train split, so lora_training runs its node."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_tiny_models, build_tiny_student, prepare_demo_corpus


def demo_corpus() -> Pipeline:
    return Pipeline([Node(prepare_demo_corpus, ["params:demo_data", "params:data_sampling"], "demo_manifest",
                          name="prepare_demo_corpus")])


def tiny_student() -> Pipeline:
    return Pipeline([Node(build_tiny_student,
                          ["sft_train_chat", "params:tiny_models", "params:lora_training.base_model"],
                          "tiny_student", name="build_tiny_student")])


def create_pipeline(**kwargs) -> Pipeline:
    return demo_corpus() + Pipeline(
        [
            Node(build_tiny_models,
                 ["params:tiny_models", "params:thinking_generation", "params:video_segmentation.sam3.model"],
                 ["tiny_thinker", "tiny_sam3"], name="build_tiny_models"),
        ]
    )
