"""demo_data: the synthetic demo corpus (written only when no source is configured) and its ground truth by video_id."""

from kedro.pipeline import Node, Pipeline

from .nodes import ground_truth_by_video, prepare_demo_corpus


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_demo_corpus, ["params:demo_data", "params:data_sampling"], "demo_manifest",
                 name="prepare_demo_corpus"),
            Node(ground_truth_by_video, "demo_manifest", "ground_truth", name="ground_truth_by_video"),
        ]
    )
