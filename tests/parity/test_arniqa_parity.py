"""Parity of the distortion bank with the official ARNIQA functions (reference outputs in ../shared).

Which check applies (see :mod:`iqa_bench.distortions.parity`):

* deterministic ops (incl. the jpeg and jpeg2000 codecs, which match exactly here): >= 99% of the pixels of
  every image within +-1 grey level of the reference;
* stochastic ops (whitenoise, whitenoiseCC, impulsenoise, multnoise, jitter, noneccpatch, colorblock,
  colorshift, motionblur's angle): mean absolute change from the pristine crop within 15% (+0.5 grey level)
  of the reference's, averaged over the 4 images and 4 of our seeds; and the same monotone level ordering
  wherever the reference's ordering is monotone;
* compositions: the deterministic criterion when every step is deterministic, otherwise the MAD criterion.
"""

from __future__ import annotations

import pytest

from iqa_bench import distortions
from iqa_bench.distortions.bank import get_spec
from iqa_bench.distortions.parity import (
    ParityResult,
    check_composition,
    check_level,
    mad_ordering_ok,
    psnr,
    to_u8,
)

pytestmark = pytest.mark.parity

NAMES = distortions.names()
STOCHASTIC = [n for n in NAMES if get_spec(n).stochastic]
_RESULTS: dict[tuple[str, int], ParityResult] = {}


def _check(reference, name: str, level: int) -> ParityResult:
    """check_level, computed once per (op, level) for the whole module (the ordering tests reuse it)."""
    if (name, level) not in _RESULTS:
        _RESULTS[name, level] = check_level(reference, name, level)
    return _RESULTS[name, level]


def test_stochastic_flags_match_the_reference(arniqa_reference):
    empirical = {d["name"]: d["stochastic_empirical"] for d in arniqa_reference.manifest["distortions"]}
    assert {n: get_spec(n).stochastic for n in NAMES} == empirical


def test_level_tables_match_the_reference(arniqa_reference):
    for d in arniqa_reference.manifest["distortions"]:
        assert distortions.level_params(d["name"]) == pytest.approx(tuple(float(v) for v in d["levels"]))


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", NAMES)
def test_level_parity(arniqa_reference, name, level):
    r = _check(arniqa_reference, name, level)
    if r.criterion == "within1":
        assert r.passed, f"{name} L{level}: worst image has {r.value:.4f} of pixels within +-1 (need >= 0.99)"
    else:
        assert r.passed, (
            f"{name} L{level}: mean |change| {r.value:.2f} vs reference {r.reference:.2f} "
            f"(allowed gap {r.tolerance:.2f})"
        )


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_level_ordering(arniqa_reference, name):
    results = [_check(arniqa_reference, name, lv) for lv in range(1, 6)]
    ours = [r.ours_mad for r in results]
    ref = [r.ref_mad for r in results]
    assert mad_ordering_ok(ours, ref), f"{name}: our MAD by level {ours} vs reference {ref}"


def test_jpeg2000_psnr_at_least_30db(arniqa_reference):
    x = arniqa_reference.pristine()
    for level in range(1, 6):
        ours = to_u8(distortions.apply("jpeg2000", x, level))
        ref = arniqa_reference.outputs("jpeg2000", level)
        worst = min(psnr(ours[i], ref[i]) for i in range(len(ref)))
        assert worst >= 30.0, f"jpeg2000 L{level}: PSNR(ours, reference) {worst:.1f} dB"


@pytest.mark.parametrize("index", range(6))
def test_composition_parity(arniqa_reference, index):
    r = check_composition(arniqa_reference, index, seeds=2)
    assert r.passed, f"composition {index} ({r.name}): {r.criterion} value {r.value:.4f} vs {r.reference:.4f}"
