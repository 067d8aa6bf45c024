"""demo_data: the synthetic demo corpus (only when no data source is configured) and its keyed ground truth."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
