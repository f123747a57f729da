"""Our separable MS-SSIM equals torchmetrics' MS-SSIM on luma, and orders distortion severity."""

import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

from iqa_bench.data.fr_metrics import luma, ms_ssim


def test_matches_torchmetrics_on_luma():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 176, 200, generator=g)
    x = (
        ref + torch.tensor([0.02, 0.1, 0.3]).view(3, 1, 1, 1) * torch.randn(3, 3, 176, 200, generator=g)
    ).clamp(0, 1)
    ours = ms_ssim(x, ref.expand_as(x))
    theirs = tm_ms_ssim(luma(x), luma(ref.expand_as(x)), data_range=1.0, reduction="none")
    torch.testing.assert_close(ours, theirs, atol=5e-3, rtol=0)  # torchmetrics pads differently at borders
    assert ours[0] > ours[1] > ours[2]  # more noise -> lower score
    torch.testing.assert_close(ms_ssim(ref, ref), torch.ones(1))
