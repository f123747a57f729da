"""MS-SSIM for the built-in pseudo-MOS: torchmetrics on luma, orders distortion severity, keys the score cache."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

import iqa_bench.data.eval_sets as eval_sets
from iqa_bench.data.fr_metrics import luma, ms_ssim


def _noisy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(1, 3, 176, 200, generator=g).expand(3, -1, -1, -1)
    noise = torch.tensor([0.02, 0.1, 0.3]).view(3, 1, 1, 1) * torch.randn(3, 3, 176, 200, generator=g)
    return (ref + noise).clamp(0, 1), ref


def test_scores_luma_and_orders_noise():
    x, ref = _noisy()
    ours = ms_ssim(x, ref)
    assert ours.shape == (3,) and ours.dtype == torch.float32
    # RGB input is scored on BT.601 luma (not per channel)
    torch.testing.assert_close(ours, tm_ms_ssim(luma(x), luma(ref), data_range=1.0, reduction="none"))
    rgb = tm_ms_ssim(x, ref, data_range=1.0, reduction="none")
    assert (ours - rgb).abs().max() > 1e-3
    assert ours[0] > ours[1] > ours[2] > 0  # more noise -> lower score
    torch.testing.assert_close(ms_ssim(ref[:1], ref[:1]), torch.ones(1))
    torch.testing.assert_close(ms_ssim(luma(x), luma(ref)), ours)  # one-channel input is used as is
    with pytest.raises(ValueError, match="same shape"):
        ms_ssim(x, ref[:1])


def test_scorer_is_part_of_the_builtin_score_cache_key(tmp_path, monkeypatch):
    monkeypatch.setattr(
        eval_sets.BuiltinSyntheticEval, "_load_or_compute_scores", lambda self, labels: np.zeros(len(labels))
    )
    a = eval_sets.BuiltinSyntheticEval(tmp_path, ["jpeg"], levels=[1])
    monkeypatch.setattr(eval_sets, "SCORER", "another-scorer")
    b = eval_sets.BuiltinSyntheticEval(tmp_path, ["jpeg"], levels=[1])
    assert a.cache_file != b.cache_file and a.cache_file.parent.parent == b.cache_file.parent.parent
