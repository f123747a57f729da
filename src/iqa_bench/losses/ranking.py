"""RankIQA's "efficient Siamese" all-pairs hinge loss, vectorised (the RankIQA/MLF papers and code).

Every image of a batch is scored once by one network (the Siamese branches share weights). For every ordered pair
(i better, j worse) inside the same group the hinge `max(0, m - (s_i - s_j))` is applied; pairs across groups are
never formed. A higher score means better quality. Autograd of the masked pairwise matrix gives exactly the
per-image coefficients of the official Caffe loss layer (#active pairs as worse − #active pairs as better) / B.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("sum_over_batch", "mean_over_pairs", "sum")


def _reduce(total: torch.Tensor, num_images: int, num_pairs: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum_over_batch":  # the official reduction: sum over valid pairs / number of images
        return total / max(1, num_images)
    if reduction == "mean_over_pairs":
        return total / num_pairs.clamp_min(1).to(total.dtype)
    if reduction == "sum":
        return total
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def pairwise_ranking_hinge(
    scores: torch.Tensor,
    groups: torch.Tensor,
    levels: torch.Tensor,
    margin: float = 10.0,
    reduction: str = "sum_over_batch",
) -> torch.Tensor:
    """All-pairs hinge over the pairs of each group, for any batch layout.

    Args:
        scores: `(N,)` network outputs (higher = better quality).
        groups: `(N,)` integer group ids; pairs are formed only between items of the same group.
        levels: `(N,)` integer distortion levels (0 = pristine; higher = more distorted). Items of equal level form
            no pair.
        margin: hinge margin m (paper: 10).
        reduction: "sum_over_batch" (sum over valid pairs / N, the official one), "mean_over_pairs" or "sum".
    Returns: scalar loss. Memory is O(N²); the (G, L) form `ladder_ranking_hinge` is O(G·L²).
    """
    if scores.ndim != 1 or groups.shape != scores.shape or levels.shape != scores.shape:
        raise ValueError(
            f"scores, groups and levels must all be (N,), got {tuple(scores.shape)}, {tuple(groups.shape)}, "
            f"{tuple(levels.shape)}"
        )
    diff = scores[:, None] - scores[None, :]  # [i, j] = s_i - s_j
    valid = (groups[:, None] == groups[None, :]) & (levels[:, None] < levels[None, :])  # i better than j
    hinge = torch.where(
        valid, (margin - diff).clamp_min(0), torch.zeros((), dtype=diff.dtype, device=diff.device)
    )
    return _reduce(hinge.sum(), scores.shape[0], valid.sum(), reduction)


def ladder_ranking_hinge(
    scores: torch.Tensor, margin: float = 10.0, reduction: str = "sum_over_batch"
) -> torch.Tensor:
    """The same loss for the regular layout: `scores (G, L)`, one group per row, column = level (0 = pristine,
    severity increasing with the column). Equal to `pairwise_ranking_hinge` on the flattened scores with
    `groups = row`, `levels = column`."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be (G, L), got {tuple(scores.shape)}")
    g, n_levels = scores.shape
    diff = scores[:, :, None] - scores[:, None, :]  # (G, L, L): [g, i, j] = s_gi - s_gj
    upper = torch.ones(n_levels, n_levels, dtype=torch.bool, device=scores.device).triu(diagonal=1)  # i < j
    hinge = (margin - diff).clamp_min(0) * upper
    num_pairs = torch.tensor(g * n_levels * (n_levels - 1) // 2, device=scores.device)
    return _reduce(hinge.sum(), g * n_levels, num_pairs, reduction)
