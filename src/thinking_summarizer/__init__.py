"""thinking-summarizer: distil HumanOmniV2's long video reasoning into summaries SAM3 can act on."""

__version__ = "0.1.0"
