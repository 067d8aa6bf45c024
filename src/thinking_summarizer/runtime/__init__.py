"""Before and around the models: the preflight check and torch device/memory helpers."""
