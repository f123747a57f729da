"""iqa_bench: pretraining strategies for no-reference image quality assessment under one roof."""

__version__ = "0.1.0"


def load(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy wrapper, see iqa_bench.api.load
    """`iqa_bench.api.load`: a quality model from a checkpoint + regressor (imported lazily: importing the
    package stays cheap)."""
    from iqa_bench.api import load as _load

    return _load(*args, **kwargs)
