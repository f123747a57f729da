"""NT-Xent equals a naive per-anchor loop implementation, in value and gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from iqa_bench.losses.nt_xent import nt_xent


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        num = torch.exp(torch.dot(z[i], z[pos]) / t)
        den = sum(torch.exp(torch.dot(z[i], z[k]) / t) for k in range(n2) if k != i)
        total = total - torch.log(num / den)
    return total / n2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (5, 8, 0.1), (8, 16, 1.0)])
def test_value_and_grad_match_naive(n, d, t):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    fast = nt_xent(z1.float(), z2.float(), t)
    ref = naive_nt_xent(z1, z2, t)
    assert fast.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    g_fast = torch.autograd.grad(nt_xent(z1, z2, t), (z1, z2))
    g_ref = torch.autograd.grad(naive_nt_xent(z1, z2, t), (z1, z2))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-6)


def test_perfect_pairs_beat_random_pairs():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(16, 32, generator=g)
    aligned = nt_xent(z1, z1 + 0.01 * torch.randn(16, 32, generator=g), 0.1)
    shuffled = nt_xent(z1, z1[torch.randperm(16, generator=g)], 0.1)
    assert aligned.item() < 0.05 < math.log(31) < shuffled.item()  # near 0 vs worse than chance


def test_orthogonal_identical_pairs_give_the_closed_form():
    """16 orthogonal embeddings, each its own positive: one candidate at similarity 1, 30 at 0, so the loss is
    log(1 + 30 exp(-1/τ)) for every anchor."""
    z = torch.eye(16, 32)
    for t in (0.1, 0.5):
        assert nt_xent(z, z, t).item() == pytest.approx(math.log1p(30 * math.exp(-1 / t)), rel=1e-4)


def test_uniform_embeddings_give_log_of_candidates():
    z = torch.ones(4, 3)
    # all similarities equal -> loss = log(2N - 1)
    assert nt_xent(z, z, 0.5).item() == pytest.approx(math.log(7), rel=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="z1 and z2"):
        nt_xent(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.zeros(3, 2), torch.zeros(3, 2), 0.0)
