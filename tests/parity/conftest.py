"""Fixtures of the parity tests: the ARNIQA reference outputs in ``../shared/reference/arniqa``."""

from __future__ import annotations

from pathlib import Path

import pytest

from iqa_bench.distortions.parity import Reference

# tests/parity/conftest.py -> parents[2] is the repository root; shared/ sits beside it.
ARNIQA_REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "arniqa"


@pytest.fixture(scope="session")
def arniqa_reference() -> Reference:
    if not (ARNIQA_REFERENCE / "manifest.json").is_file():
        pytest.skip(
            f"ARNIQA reference outputs not found at {ARNIQA_REFERENCE} (they live in ../shared beside the "
            "repository in the development setup; a plain clone has none)"
        )
    return Reference(ARNIQA_REFERENCE)
