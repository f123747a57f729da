"""iqa_bench: pretraining strategies for no-reference image quality assessment under one roof."""

__version__ = "0.1.0"
