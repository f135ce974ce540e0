"""The edge-list primitives agree with per-segment loops written with plain torch ops."""

from __future__ import annotations

import torch

from gatkit import ops


def random_segments(seed: int, num_edges: int = 50, num_segments: int = 9):
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, num_segments - 2, (num_edges,), generator=generator)  # 2 empty
    scores = torch.randn(num_edges, 3, generator=generator, dtype=torch.float64)
    return scores, index, num_segments


def test_segment_softmax_equals_softmax_within_each_segment():
    scores, index, n = random_segments(0)
    alpha = ops.segment_softmax(scores, index, n)
    for segment in range(n):
        members = index == segment
        if members.any():
            expected = torch.softmax(scores[members], dim=0)
            torch.testing.assert_close(alpha[members], expected, rtol=1e-12, atol=0)


def test_segment_softmax_is_stable_for_huge_scores():
    scores, index, n = random_segments(1)
    alpha = ops.segment_softmax(scores * 1e4, index, n)
    assert torch.isfinite(alpha).all()
    sums = ops.segment_sum(alpha, index, n)
    occupied = torch.bincount(index, minlength=n) > 0
    torch.testing.assert_close(sums[occupied], torch.ones_like(sums[occupied]))


def test_segment_sum_and_max_leave_empty_segments_at_zero():
    scores, index, n = random_segments(2)
    total = ops.segment_sum(scores, index, n)
    largest = ops.segment_max(scores, index, n)
    for segment in range(n):
        members = index == segment
        if members.any():
            torch.testing.assert_close(total[segment], scores[members].sum(0))
            torch.testing.assert_close(largest[segment], scores[members].max(0).values)
        else:
            assert (total[segment] == 0).all() and (largest[segment] == 0).all()


def test_segment_softmax_of_no_edges_is_empty():
    empty = torch.empty(0, 2)
    assert ops.segment_softmax(empty, torch.empty(0, dtype=torch.long), 4).shape == (0, 2)


def test_self_loops_are_replaced_once_per_node():
    edge_index = torch.tensor([[0, 1, 1, 2, 2], [1, 1, 2, 2, 0]])
    edge_attr = torch.tensor([[1.0], [5.0], [2.0], [7.0], [4.0]])
    kept, kept_attr = ops.remove_self_loops(edge_index, edge_attr)
    assert kept.tolist() == [[0, 1, 2], [1, 2, 0]]
    full, full_attr = ops.add_self_loops(kept, num_loops=3, edge_attr=kept_attr, fill_value="mean")
    assert full.tolist() == [[0, 1, 2, 0, 1, 2], [1, 2, 0, 0, 1, 2]]
    # node 0 receives 4.0, node 1 receives 1.0, node 2 receives 2.0
    assert full_attr.flatten().tolist() == [1.0, 2.0, 4.0, 4.0, 1.0, 2.0]
