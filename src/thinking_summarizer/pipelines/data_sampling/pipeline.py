"""data_sampling: the sources (or the demo corpus when none is configured) -> validated, unified, deduped, sampled."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    dedupe_by_video, ground_truth_by_video, load_sources, prepare_demo_corpus, sample_by_ratio, sampling_report,
    select_sources,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_demo_corpus, ["params:demo_data", "params:data_sampling"], "demo_manifest",
                 name="prepare_demo_corpus"),
            Node(select_sources, ["params:data_sampling", "demo_manifest"], "selected_sources", name="select_sources"),
            Node(ground_truth_by_video, "demo_manifest", "ground_truth", name="ground_truth_by_video"),
            Node(
                load_sources,
                ["selected_sources", "params:data_sampling.policy"],
                ["unified_samples", "invalid_records"],
                name="load_sources",
            ),
            Node(
                dedupe_by_video,
                ["unified_samples", "selected_sources"],
                ["deduped_samples", "duplicate_records"],
                name="dedupe_by_video",
            ),
            Node(
                sample_by_ratio,
                ["deduped_samples", "selected_sources", "params:data_sampling.n_samples",
                 "params:data_sampling.seed"],
                "sampled_samples",
                name="sample_by_ratio",
            ),
            Node(
                sampling_report,
                ["selected_sources", "unified_samples", "invalid_records", "duplicate_records", "sampled_samples"],
                "sampling_report",
                name="sampling_report",
            ),
        ]
    )
