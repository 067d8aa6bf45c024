"""demo_data: the synthetic demo corpus (written only when no source is configured). Its ground truth is keyed
for the sampled videos by data_sampling, once sampling has succeeded."""

from kedro.pipeline import Node, Pipeline

from .nodes import prepare_demo_corpus


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_demo_corpus, ["params:demo_data", "params:data_sampling"], "demo_manifest",
                 name="prepare_demo_corpus"),
        ]
    )
