"""Text-prompted video segmentation (SAM3) behind one interface: `Segmenter.track(video, prompts, on_frame)`."""
