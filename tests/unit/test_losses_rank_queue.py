"""Ranking hinge equals a naive double loop (value and gradient); InfoNCE queue wraps around correctly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iqa_bench.losses.infonce_queue import KeyQueue, infonce_queue
from iqa_bench.losses.ranking import ladder_ranking_hinge, pairwise_ranking_hinge


def naive_ranking(scores, groups, levels, margin, reduction):
    total = scores.new_zeros(())
    pairs = 0
    n = scores.shape[0]
    for i in range(n):
        for j in range(n):
            if groups[i] == groups[j] and levels[i] < levels[j]:
                total = total + torch.clamp(margin - (scores[i] - scores[j]), min=0)
                pairs += 1
    if reduction == "sum_over_batch":
        return total / n
    if reduction == "mean_over_pairs":
        return total / max(pairs, 1)
    return total


@pytest.mark.parametrize("reduction", ["sum_over_batch", "mean_over_pairs", "sum"])
@pytest.mark.parametrize("n,n_groups,n_levels,margin", [(12, 3, 4, 1.0), (30, 4, 6, 10.0), (7, 2, 3, 0.5)])
def test_pairwise_hinge_matches_naive(reduction, n, n_groups, n_levels, margin):
    g = torch.Generator().manual_seed(n * 31 + n_levels)
    scores = (torch.randn(n, generator=g, dtype=torch.float64) * margin).requires_grad_(True)
    groups = torch.randint(0, n_groups, (n,), generator=g)
    levels = torch.randint(0, n_levels, (n,), generator=g)  # ties inside a group form no pair
    fast = pairwise_ranking_hinge(scores, groups, levels, margin, reduction)
    ref = naive_ranking(scores, groups, levels, margin, reduction)
    torch.testing.assert_close(fast, ref)
    (g_fast,) = torch.autograd.grad(fast, scores)
    (g_ref,) = torch.autograd.grad(ref, scores)
    torch.testing.assert_close(g_fast, g_ref)
    assert g_fast.abs().sum() > 0  # some hinges are active


def test_ladder_form_equals_general_form_and_official_gradient():
    g = torch.Generator().manual_seed(0)
    n_groups, n_levels, margin = 4, 6, 10.0  # the LIVE layout per image ladder
    scores = (torch.randn(n_groups, n_levels, generator=g, dtype=torch.float64) * 8).requires_grad_(True)
    ladder = ladder_ranking_hinge(scores, margin)
    flat = scores.reshape(-1)
    groups = torch.arange(n_groups).repeat_interleave(n_levels)
    levels = torch.arange(n_levels).repeat(n_groups)
    general = pairwise_ranking_hinge(flat, groups, levels, margin)
    torch.testing.assert_close(ladder, general)
    torch.testing.assert_close(ladder, naive_ranking(flat, groups, levels, margin, "sum_over_batch"))
    (grad,) = torch.autograd.grad(ladder, scores)
    # official Caffe coefficient: (#active pairs as worse - #active pairs as better) / B
    s = scores.detach()
    coef = torch.zeros_like(s)
    for gi in range(n_groups):
        for i in range(n_levels):
            for j in range(i + 1, n_levels):
                if margin - (s[gi, i] - s[gi, j]) > 0:
                    coef[gi, j] += 1
                    coef[gi, i] -= 1
    torch.testing.assert_close(grad, coef / (n_groups * n_levels))
    for red in ("mean_over_pairs", "sum"):
        torch.testing.assert_close(
            ladder_ranking_hinge(scores, margin, red),
            pairwise_ranking_hinge(flat, groups, levels, margin, red),
        )


def test_correctly_ordered_scores_give_zero_loss():
    scores = torch.tensor([[30.0, 15.0, 0.0], [5.0, -6.0, -20.0]])
    assert ladder_ranking_hinge(scores, 10.0).item() == 0.0
    assert ladder_ranking_hinge(scores.flip(1), 10.0).item() > 0


def test_bad_shapes_and_reduction_raise():
    with pytest.raises(ValueError, match=r"scores, groups and levels must all be \(N,\), got \(3,\), \(4,\)"):
        pairwise_ranking_hinge(torch.zeros(3), torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"scores must be \(G, L\), got \(3,\)"):
        ladder_ranking_hinge(torch.zeros(3))
    with pytest.raises(ValueError, match="reduction must be one of .*sum_over_batch.*got 'mean'"):
        ladder_ranking_hinge(torch.zeros(2, 3), reduction="mean")


def test_default_margin_is_the_papers_and_single_pair_reductions():
    """Margin m = 10 (RankIQA's ε) by default; one image / one pair divide by 1, not by a floor above it."""
    s = torch.tensor([[1.0, 3.0]])  # one ladder of two levels: one pair, wrongly ordered by 2
    assert ladder_ranking_hinge(s, reduction="sum").item() == pytest.approx(12.0)  # max(0, 10 - (1 - 3))
    assert ladder_ranking_hinge(s, reduction="mean_over_pairs").item() == pytest.approx(12.0)
    assert ladder_ranking_hinge(s).item() == pytest.approx(6.0)  # sum over pairs / 2 images
    flat = (torch.tensor([1.0, 3.0]), torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert pairwise_ranking_hinge(*flat, reduction="mean_over_pairs").item() == pytest.approx(12.0)
    one = pairwise_ranking_hinge(
        torch.tensor([4.0]), torch.tensor([0]), torch.tensor([0]), reduction="sum_over_batch"
    )
    assert one.item() == 0.0  # a lone image forms no pair


# -- InfoNCE with a queue --------------------------------------------------------------------------------------
def naive_infonce(q, k, queue, t):
    q, k = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    total = 0.0
    for i in range(q.shape[0]):
        pos = torch.exp(q[i] @ k[i] / t)
        neg = sum(torch.exp(q[i] @ queue[j] / t) for j in range(queue.shape[0]))
        total = total - torch.log(pos / (pos + neg))
    return total / q.shape[0]


def test_infonce_matches_naive_value_and_grad():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 8, generator=g, dtype=torch.float64)
    queue = F.normalize(torch.randn(11, 8, generator=g, dtype=torch.float64), dim=1)
    loss, acc = infonce_queue(q, k, queue, 0.2)
    ref = naive_infonce(q, k, queue, 0.2)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    (g1,) = torch.autograd.grad(infonce_queue(q, k, queue, 0.2)[0], q)
    (g2,) = torch.autograd.grad(naive_infonce(q, k, queue, 0.2), q)
    torch.testing.assert_close(g1.double(), g2, rtol=1e-4, atol=1e-6)
    # accuracy: the fraction of queries whose positive beats every queue entry (naive loop); two queries get
    # their own copy as key, so the score is partial and a wrong count shows
    k2 = k.clone()
    k2[:2] = q.detach()[:2]
    _, acc = infonce_queue(q.detach(), k2, queue, 0.2)
    qn, kn = F.normalize(q.detach(), dim=1), F.normalize(k2, dim=1)
    hits = [float(qn[i] @ kn[i]) > float((queue @ qn[i]).max()) for i in range(5)]
    assert 0 < sum(hits) < 5
    assert acc.item() == pytest.approx(sum(hits) / 5)
    # a perfect positive far from the queue is classified first
    _, acc2 = infonce_queue(q.detach(), q.detach(), -F.normalize(q.detach(), dim=1)[:1].repeat(3, 1), 0.2)
    assert acc2.item() == 1.0


def test_infonce_extra_negatives_equal_a_longer_queue_row_by_row():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 6, generator=g, dtype=torch.float64)
    queue = F.normalize(torch.randn(5, 6, generator=g, dtype=torch.float64), dim=1)
    extra = torch.randn(4, 2, 6, generator=g, dtype=torch.float64)
    loss, _ = infonce_queue(q, k, queue, 0.2, extra)
    ref = (
        sum(
            naive_infonce(q[i : i + 1], k[i : i + 1], torch.cat([queue, F.normalize(extra[i], dim=1)]), 0.2)
            for i in range(4)
        )
        / 4
    )
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        infonce_queue(q, k, queue, 0.2, extra[:2])


@pytest.mark.parametrize("size,batch", [(7, 3), (5, 5), (4, 9), (10, 4)])
def test_queue_wraps_around_like_a_sequential_fifo(size, batch):
    """Any queue length and batch size: the ring buffer equals writing each key one by one."""
    dim = 3
    q = KeyQueue(size, dim, seed=0)
    ref = q.queue.clone()
    ptr = 0
    counter = 0
    for _step in range(5):
        keys = torch.arange(counter, counter + batch, dtype=torch.float32)[:, None].repeat(1, dim)
        counter += batch
        q.enqueue(keys)
        for row in keys:  # naive sequential FIFO
            ref[ptr] = row
            ptr = (ptr + 1) % size
        torch.testing.assert_close(q.queue, ref)
        assert int(q.ptr) == ptr
    # the queue holds exactly the last `size` keys, each once
    values = sorted(q.queue[:, 0].tolist())
    assert values == [float(v) for v in range(counter - size, counter)]


@pytest.mark.parametrize("size,dim", [(0, 4), (4, 0), (0, 0)])
def test_queue_rejects_empty_shapes(size, dim):
    with pytest.raises(ValueError, match=f"queue size and dim must be >= 1, got {size}, {dim}"):
        KeyQueue(size, dim)


def test_smallest_queue_is_accepted():
    q = KeyQueue(1, 1, seed=0)  # one key of one dimension: a unit scalar
    assert q.queue.shape == (1, 1) and abs(float(q.queue)) == pytest.approx(1.0)
    q.enqueue(torch.tensor([[3.0]]), gather=False)
    assert float(q.queue) == 3.0 and int(q.ptr) == 0


def test_queue_state_is_checkpointed_and_seeded():
    a, b = KeyQueue(6, 4, seed=3), KeyQueue(6, 4, seed=3)
    torch.testing.assert_close(a.queue, b.queue)
    torch.testing.assert_close(a.queue.norm(dim=1), torch.ones(6))
    a.enqueue(torch.ones(4, 4))
    state = a.state_dict()
    assert set(state) == {"queue", "ptr"} and int(state["ptr"]) == 4
    c = KeyQueue(6, 4, seed=99)
    c.load_state_dict(state)
    torch.testing.assert_close(c.queue, a.queue)
    assert int(c.ptr) == 4
    with pytest.raises(ValueError):
        a.enqueue(torch.ones(2, 5))


@pytest.mark.parametrize(
    "q,k,queue",
    [
        ((4, 6), (3, 6), (5, 6)),  # q and k differ
        ((6,), (6,), (5, 6)),  # q not 2-D
        ((4, 6), (4, 6), (30,)),  # queue not 2-D
        ((4, 6), (4, 6), (5, 7)),  # queue of another width
    ],
)
def test_infonce_bad_shapes_name_all_three(q, k, queue):
    import re

    with pytest.raises(
        ValueError, match=re.escape(f"queue (K, d); got {tuple(q)}, {tuple(k)}, {tuple(queue)}")
    ):
        infonce_queue(torch.zeros(q), torch.zeros(k), torch.zeros(queue))


def test_infonce_bad_temperature_and_extra_negatives():
    q, queue = torch.randn(4, 6), F.normalize(torch.randn(5, 6), dim=1)
    for t in (0.0, -0.1):
        with pytest.raises(ValueError, match=f"temperature must be > 0, got {t}"):
            infonce_queue(q, q, queue, t)
    with pytest.raises(ValueError, match=r"extra_negatives must be \(n, E, d\), got \(4, 6\)"):
        infonce_queue(q, q, queue, 0.2, torch.zeros(4, 6))


def test_default_temperatures_are_the_papers():
    """NT-Xent defaults to ARNIQA's τ = 0.1, InfoNCE to MoCo-v2 / Re-IQA's T = 0.2."""
    from iqa_bench.losses.nt_xent import nt_xent

    g = torch.Generator().manual_seed(5)
    z1, z2, queue = (
        torch.randn(4, 6, generator=g),
        torch.randn(4, 6, generator=g),
        torch.randn(7, 6, generator=g),
    )
    queue = F.normalize(queue, dim=1)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z1, z2, 0.1).item())
    assert nt_xent(z1, z2, 0.1).item() != pytest.approx(nt_xent(z1, z2, 0.2).item())
    assert infonce_queue(z1, z2, queue)[0].item() == pytest.approx(
        infonce_queue(z1, z2, queue, 0.2)[0].item()
    )
    assert infonce_queue(z1, z2, queue, 0.2)[0].item() != pytest.approx(
        infonce_queue(z1, z2, queue, 1.2)[0].item()
    )
