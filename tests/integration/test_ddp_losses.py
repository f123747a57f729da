"""Distributed equality: 2 gloo processes x batch B/2 give the loss and gradients of 1 process x batch B, for
NT-Xent (negatives gathered with gradients) and InfoNCE with a queue (keys of every rank enqueued, in rank order)."""

from __future__ import annotations

from _ddp import check_ranks_equal_one_process


def test_two_gloo_processes_equal_one_process(tmp_path):
    check_ranks_equal_one_process("gloo", tmp_path)
