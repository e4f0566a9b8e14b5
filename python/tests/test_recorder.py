"""SourceLoadRecorder keeps per-source loads apart, and the policy uses them."""

from __future__ import annotations

import numpy as np
import pytest

from _instances import cross_node_even_split, skewed_counts
from gimbal_planner import SourceLoadRecorder, check_plan, make_policy


def test_records_each_source_apart_and_sums_to_vllms_totals():
    rec = SourceLoadRecorder(num_sources=3, num_layers=2, num_experts=4, window=10)
    rec.record(0, [[1, 0, 0, 0], [0, 0, 0, 2]])
    rec.record(2, np.array([[0, 5, 0, 0], [0, 0, 1, 0]]))
    rec.step()
    rec.record(0, [[1, 1, 1, 1], [0, 0, 0, 0]])
    m = rec.matrix()
    assert m.shape == rec.shape == (2, 3, 4)
    assert m[0, 0].tolist() == [2, 1, 1, 1] and m[0, 1].tolist() == [0, 0, 0, 0]
    assert m[0, 2].tolist() == [0, 5, 0, 0] and m[1, 0].tolist() == [0, 0, 0, 2]
    assert rec.totals().tolist() == [[2, 6, 1, 1], [0, 0, 1, 2]]


def test_window_drops_the_oldest_step():
    rec = SourceLoadRecorder(1, 1, 2, window=2)
    rec.record(0, [[4, 0]])
    rec.step()
    rec.record(0, [[0, 1]])
    assert rec.totals().tolist() == [[4, 1]]
    rec.step()  # the window holds 2 steps: [[4, 0]] leaves
    rec.record(0, [[0, 2]])
    assert rec.totals().tolist() == [[0, 3]]
    assert rec.steps_recorded() == 1


def test_physical_loads_fold_onto_logical_experts():
    rec = SourceLoadRecorder(2, 1, 3)
    # slots 0..4 hold experts 0, 1, 2, 0, -1 (an empty slot): expert 0's two replicas add up.
    rec.record_physical(1, [[3, 1, 2, 4, 9]], [[0, 1, 2, 0, -1]])
    assert rec.matrix()[0, 1].tolist() == [7, 1, 2]


def test_numpy_integer_ranks_are_taken():
    rec = SourceLoadRecorder(2, 1, 2)
    rec.record(np.int64(1), [[1, 2]])
    assert rec.matrix().tolist() == [[[0, 0], [1, 2]]]


def test_record_all_takes_an_all_gather_of_every_rank():
    rec = SourceLoadRecorder(2, 1, 2)
    rec.record_all(np.array([[[1, 2]], [[3, 4]]]))  # [sources, layers, experts]
    assert rec.matrix().tolist() == [[[1, 2], [3, 4]]]


@pytest.mark.parametrize("call,message", [
    (lambda r: r.record(2, np.zeros((1, 2))), "outside"),
    (lambda r: r.record(0, np.zeros((2, 2))), "expected shape"),
    (lambda r: r.record(0, [[-1, 0]]), "finite and >= 0"),
    (lambda r: r.record_physical(0, [[1, 1]], [[0, 5]]), "ids < 2"),
    # A bool passes 0 <= True < n, and numpy takes it as a mask: the loads went to every source.
    (lambda r: r.record(True, np.ones((1, 2))), "integer rank"),
    (lambda r: r.record(np.bool_(False), np.ones((1, 2))), "integer rank"),
    (lambda r: r.record(1.0, np.ones((1, 2))), "integer rank"),
    (lambda r: r.record_physical(True, [[1, 1]], [[0, 1]]), "integer rank"),
    # Loads the planner would refuse, summed over a window, overflowed to inf.
    (lambda r: r.record(0, [[1e300, 0]]), "more than the planner takes"),
    # A slot id of 0.9 was read as expert 0, NaN as a dropped slot.
    (lambda r: r.record_physical(0, [[1, 1]], [[0.9, 1]]), "must hold integers"),
    (lambda r: r.record_physical(0, [[1, 1]], np.array([[0, np.nan]])), "must hold integers"),
])
def test_bad_records_are_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(SourceLoadRecorder(2, 1, 2))


def test_recorded_sources_make_the_plan_keep_tokens_on_their_node():
    # 2 nodes x 2 GPUs, 8 sources; class 0 (sources 0-3, node 0) uses the even experts, class 1
    # the odd ones. vLLM's totals alone cannot tell; the recorder can.
    counts = skewed_counts(2, 8, 16, seed=11)
    weight = counts.sum(axis=1)
    rec = SourceLoadRecorder(8, 2, 16)
    for s in range(8):
        rec.record(s, counts[:, s, :])
    aware = make_policy(recorder=rec).rebalance_experts(weight, 20, 1, 2, 4)
    blind = make_policy().rebalance_experts(weight, 20, 1, 2, 4)
    check_plan(aware, 16, 20, 4, 2)
    aware_x = cross_node_even_split(counts, aware, 4, 2)
    blind_x = cross_node_even_split(counts, blind, 4, 2)
    assert aware_x < 0.6 * blind_x, (aware_x, blind_x)


def test_recorder_proportions_are_scaled_to_vllms_totals():
    # The recorder's window need not match vLLM's: the totals planned on are vLLM's weight,
    # split over sources as the recorder saw them.
    rec = SourceLoadRecorder(2, 1, 3)
    rec.record(0, [[3, 0, 0]])
    rec.record(1, [[1, 2, 0]])
    policy = make_policy(recorder=rec)
    policy.rebalance_experts(np.array([[8.0, 4.0, 6.0]]), 4, 1, 1, 2)
    assert policy.last_counts.tolist() == [[[6, 0, 3], [2, 4, 3]]]  # expert 2 unseen: even
    # A recorder for another model's shape is ignored: the source-blind even split.
    policy.rebalance_experts(np.ones((2, 4)), 4, 1, 1, 2)
    assert policy.last_counts.tolist() == [[[0.5] * 4] * 2] * 2
