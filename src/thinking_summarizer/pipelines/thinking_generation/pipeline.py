"""thinking_generation: sampled samples -> per-shard generations -> merged -> gated thinking records."""

from kedro.pipeline import Node, Pipeline

from .nodes import gate_thinking, generate_thinking, merge_thinking_shards


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(generate_thinking,
                 ["sampled_samples", "thinking_cache", "thinker", "tiny_thinker", "params:thinking_generation"],
                 "thinking_shards",
                 name="generate_thinking"),
            Node(merge_thinking_shards, ["thinking_shards", "sampled_samples", "params:thinking_generation"],
                 "thinking_raw", name="merge_thinking_shards"),
            Node(gate_thinking, ["thinking_raw", "sampled_samples", "params:thinking_generation"],
                 ["thinking_records", "thinking_rejects", "thinking_report"], name="gate_thinking"),
        ]
    )
