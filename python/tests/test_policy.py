"""GimbalEplbPolicy against vLLM 0.33's policy contract: shapes, dtypes, invariants, errors."""

from __future__ import annotations

import numpy as np
import pytest

from _instances import skewed_counts
from gimbal_planner import GimbalEplbPolicy, check_plan, logical_maps, make_policy, max_over_mean

CASES = [
    # layers, experts, num_replicas, num_groups, num_nodes, num_ranks
    (2, 16, 20, 2, 2, 4),
    (3, 16, 16, 1, 1, 4),  # no redundant slots
    (1, 32, 48, 4, 2, 8),
    (2, 8, 16, 1, 1, 2),  # one replica of every expert per rank, on average
    (2, 10, 12, 1, 1, 4),  # experts do not divide over the ranks
]


@pytest.mark.parametrize("layers,experts,replicas,groups,nodes,ranks", CASES)
def test_plan_has_vllm_shape_and_invariants(layers, experts, replicas, groups, nodes, ranks):
    weight = skewed_counts(layers, ranks, experts, seed=experts + ranks).sum(axis=1)
    phy2log = make_policy().rebalance_experts(weight, replicas, groups, nodes, ranks)
    assert isinstance(phy2log, np.ndarray)
    assert phy2log.dtype == np.int64 and phy2log.shape == (layers, replicas)
    check_plan(phy2log, experts, replicas, ranks, layers)


def test_plan_from_the_current_map_keeps_invariants_and_balances():
    weight = skewed_counts(2, 4, 16, seed=3).sum(axis=1)
    policy = make_policy()
    first = policy.rebalance_experts(weight, 20, 2, 2, 4)
    again = policy.rebalance_experts(weight * 1.5, 20, 2, 2, 4, old_global_expert_indices=first)
    check_plan(again, 16, 20, 4, 2)
    contiguous = np.tile(np.arange(20) % 16, (2, 1))
    assert max_over_mean(weight, again, 4) < 0.9 * max_over_mean(weight, contiguous, 4)
    assert policy.last_quality["mean_max_over_mean"] < 1.1


def test_logical_maps_are_consistent_with_phy2log():
    phy2log = np.array([[0, 1, 2, 3, 0, 1], [0, 2, 0, 1, 0, 3]])
    log2phy, logcnt = logical_maps(phy2log, 4)
    assert logcnt.tolist() == [[2, 2, 1, 1], [3, 1, 1, 1]]
    assert log2phy.tolist() == [[[0, 4, -1], [1, 5, -1], [2, -1, -1], [3, -1, -1]],
                                [[0, 2, 4], [3, -1, -1], [1, -1, -1], [5, -1, -1]]]


def test_check_plan_rejects_a_missing_expert():
    with pytest.raises(AssertionError, match="without a replica"):
        check_plan(np.array([[0, 0, 1, 1]]), 3, 4, 2)


def test_all_zero_loads_still_give_a_valid_plan():
    # vLLM's profiling run rebalances on an empty window.
    phy2log = make_policy().rebalance_experts(np.zeros((2, 16)), 20, 1, 1, 4)
    check_plan(phy2log, 16, 20, 4, 2)


def test_unusable_current_maps_fall_back_to_the_contiguous_layout():
    weight = skewed_counts(1, 4, 16, seed=5).sum(axis=1)
    policy = make_policy()
    fresh = policy.rebalance_experts(weight, 20, 1, 1, 4)
    # -1 slots (vLLM's elastic scale-up) or a missing expert: not a placement to start from.
    holes = np.tile(np.arange(20) % 16, (1, 1))
    holes[0, 3] = -1
    missing = np.zeros((1, 20), dtype=np.int64)
    for old in (holes, missing, np.zeros((1, 8), dtype=np.int64)):
        assert np.array_equal(policy.rebalance_experts(weight, 20, 1, 1, 4, old), fresh)


def test_eplb_policy_of_the_package_also_satisfies_the_contract():
    weight = skewed_counts(2, 8, 32, seed=9).sum(axis=1)
    phy2log = make_policy(policy="eplb").rebalance_experts(weight, 48, 4, 2, 8)
    check_plan(phy2log, 32, 48, 8, 2)


def test_the_unconfigured_class_plans_with_the_defaults():
    weight = skewed_counts(1, 4, 16, seed=1).sum(axis=1)
    expected = make_policy().rebalance_experts(weight, 20, 1, 1, 4)
    assert np.array_equal(GimbalEplbPolicy.rebalance_experts(weight, 20, 1, 1, 4), expected)


@pytest.mark.parametrize("args,message", [
    ((np.ones((2, 16)), 18, 1, 1, 4), "multiple of num_ranks"),
    ((np.ones((2, 16)), 12, 1, 1, 4), "at least the experts"),
    ((np.ones((2, 16)), 16, 1, 3, 4), "multiple of num_nodes"),
    ((np.ones((2, 16)), 16, 0, 1, 4), "num_groups must be a positive integer"),
    ((-np.ones((2, 16)), 16, 1, 1, 4), "finite and >= 0"),
    ((np.full((2, 16), np.nan), 16, 1, 1, 4), "finite and >= 0"),
    ((np.ones(16), 16, 1, 1, 4), r"\[layers, experts\]"),
    # Sizes that are not integers are named, not left to fail further in.
    ((np.ones((2, 16)), 16.0, 1, 1, 4), "num_replicas must be a positive integer"),
    ((np.ones((2, 16)), 16, 1, 1, float("nan")), "num_ranks must be a positive integer"),
    ((np.ones((2, 16)), 16, None, 1, 4), "num_groups must be a positive integer"),
    ((np.ones((2, 16)), 16, 1, True, 4), "num_nodes must be a positive integer"),
    # The weight is named, not the per-source counts made from it.
    ((np.full((2, 16), 1e16), 16, 1, 1, 4), r"weight\[0\]\[0\] \(1e\+16\)"),
    # Sizes past the planner's bounds, refused before the counts are built from them.
    ((np.ones((1, 8)), 1 << 31, 1, 1, 1 << 31), r"num_replicas \(2147483648\) must be at most"),
    ((np.ones((64, 256)), 8192, 1, 1, 8192), r"layers x num_ranks x experts \(134217728\)"),
])
def test_bad_input_is_a_clear_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        make_policy().rebalance_experts(*args)


def test_bad_settings_fail_when_configured():
    with pytest.raises(ValueError, match="unknown placement policy 'nope'"):
        make_policy(policy="nope")
    with pytest.raises(ValueError, match="no_such_key"):
        make_policy(params="no_such_key=1")
    with pytest.raises(ValueError, match="alpha <= beta"):
        make_policy(alpha=2.0, beta=1.0)
    for bad in (-5.0, 0.0, float("nan"), 1e16):
        with pytest.raises(ValueError, match="expert_bytes"):
            make_policy(expert_bytes=bad)


def test_exact_policy_is_not_built_into_the_package():
    # pyproject.toml builds without CBC: the planner says so instead of planning.
    with pytest.raises(ValueError, match="(?i)cbc"):
        make_policy(policy="exact").rebalance_experts(np.ones((1, 4)), 4, 1, 1, 2)
