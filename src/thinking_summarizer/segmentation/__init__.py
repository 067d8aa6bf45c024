"""Text-prompted video segmentation: SAM3 (`sam3.Sam3Segmenter.track(video, prompts, on_frame)`), run-length
masks and overlays (`masks`)."""
