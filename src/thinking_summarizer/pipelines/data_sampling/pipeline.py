"""data_sampling: demo corpus (if missing) -> validated, unified, deduped, sampled records."""

from kedro.pipeline import Node, Pipeline

from .nodes import dedupe_by_video, load_sources, prepare_demo_corpus, sample_by_ratio, sampling_report


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_demo_corpus, "params:demo_data", "demo_manifest", name="prepare_demo_corpus"),
            Node(
                load_sources,
                ["params:data_sampling.sources", "params:data_sampling.policy", "demo_manifest"],
                ["unified_samples", "invalid_records"],
                name="load_sources",
            ),
            Node(
                dedupe_by_video,
                ["unified_samples", "params:data_sampling.sources"],
                ["deduped_samples", "duplicate_records"],
                name="dedupe_by_video",
            ),
            Node(
                sample_by_ratio,
                ["deduped_samples", "params:data_sampling.sources", "params:data_sampling.n_samples",
                 "params:data_sampling.seed"],
                "sampled_samples",
                name="sample_by_ratio",
            ),
            Node(
                sampling_report,
                ["unified_samples", "invalid_records", "duplicate_records", "sampled_samples"],
                "sampling_report",
                name="sampling_report",
            ),
        ]
    )
