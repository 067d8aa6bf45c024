"""video_segmentation: videos and questions -> thinking -> summary -> SAM3 prompts -> masks, masked MP4, stats."""

from kedro.pipeline import Node, Pipeline

from thinking_summarizer.tracking.hook import stage_tag

from .nodes import plan_samples, segment_videos, segmentation_statistics, think_and_summarize


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(plan_samples, ["val_examples", "sampled_samples", "params:video_segmentation"],
                 "segmentation_plan_samples", name="plan_samples"),
            Node(think_and_summarize,
                 ["segmentation_plan_samples", "thinking_cache", "thinker", "tiny_thinker", "teacher", "students",
                  "registered_student", "params:video_segmentation", "params:vocabulary"],
                 "segmentation_plan", name="think_and_summarize"),
            Node(segment_videos,
                 ["segmentation_plan", "sam3", "tiny_sam3", "params:video_segmentation", "ground_truth"],
                 ["segmentation_results", "segmentation_videos", "segmentation_masks"], name="segment_videos"),
            Node(segmentation_statistics, ["segmentation_results", "segmentation_plan"],
                 ["segmentation_stats", "segmentation_tracking"],
                 name="segmentation_statistics"),
        ],
        tags=stage_tag("segmentation"),
    )
