"""data_sampling: the configured sources (or demo_data's corpus when none is) -> validated, unified, deduped, sampled."""

from kedro.pipeline import Node, Pipeline

from thinking_summarizer.pipelines.demo_data.nodes import ground_truth_by_video
from thinking_summarizer.pipelines.demo_data.pipeline import demo_corpus

from .nodes import (
    dedupe_samples, load_sources, sample_by_ratio, sampling_report, select_sources,
)


def create_pipeline(**kwargs) -> Pipeline:
    # with no source configured, sampling reads demo_data's corpus: running data_sampling alone makes it too
    return demo_corpus() + Pipeline(
        [
            Node(select_sources, ["params:data_sampling", "demo_manifest"], "selected_sources", name="select_sources"),
            Node(
                load_sources,
                ["selected_sources", "params:data_sampling"],
                ["unified_samples", "invalid_records"],
                name="load_sources",
            ),
            Node(
                dedupe_samples,
                ["unified_samples", "selected_sources"],
                ["deduped_samples", "duplicate_records"],
                name="dedupe_samples",
            ),
            Node(
                sample_by_ratio,
                ["deduped_samples", "selected_sources", "params:data_sampling.n_samples",
                 "params:data_sampling.seed"],
                "sampled_samples",
                name="sample_by_ratio",
            ),
            # after sampling: a run that fails on its sources leaves the last run's ground truth untouched
            Node(ground_truth_by_video, ["demo_manifest", "sampled_samples"], "ground_truth",
                 name="ground_truth_by_video"),
            Node(
                sampling_report,
                ["selected_sources", "unified_samples", "invalid_records", "duplicate_records", "sampled_samples"],
                "sampling_report",
                name="sampling_report",
            ),
        ]
    )
