"""evaluation: val split -> summaries of every system -> metrics -> promotion -> report (all of it logged in the
evaluation child run through the tracking records)."""

from kedro.pipeline import Node, Pipeline

from thinking_summarizer.tracking.hook import stage_tag

from .nodes import decide_promotion, generate_summaries, report_evaluation, score_systems


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(generate_summaries,
                 ["val_examples", "registered_student", "students", "params:evaluation", "params:teacher_labeling",
                  "params:vocabulary", "params:summary_qc"],
                 "evaluation_outputs", name="generate_summaries"),
            Node(score_systems,
                 ["evaluation_outputs", "val_examples", "ground_truth", "params:evaluation", "params:vocabulary",
                  "params:summary_qc"],
                 ["evaluation_samples", "evaluation_results"], name="score_systems"),
            Node(decide_promotion,
                 ["evaluation_results", "evaluation_outputs", "registered_student", "params:evaluation"],
                 ["promotion_decision", "promotion_tracking"], name="decide_promotion"),
            Node(report_evaluation,
                 ["evaluation_samples", "evaluation_results", "promotion_decision", "evaluation_outputs",
                  "val_examples", "params:evaluation", "params:tracking"],
                 ["evaluation_report", "evaluation_report_latest", "evaluation_tracking"], name="report_evaluation"),
        ],
        tags=stage_tag("evaluation"),
    )
