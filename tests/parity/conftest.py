"""Fixtures of the parity tests: the ARNIQA reference outputs in ``../shared/reference/arniqa``."""

from __future__ import annotations

import pytest
from conftest import SHARED, require_shared

from iqa_bench.distortions.parity import Reference

ARNIQA_REFERENCE = SHARED / "reference" / "arniqa"


@pytest.fixture(scope="session")
def arniqa_reference() -> Reference:
    require_shared(ARNIQA_REFERENCE / "manifest.json", "ARNIQA reference outputs")
    return Reference(ARNIQA_REFERENCE)
