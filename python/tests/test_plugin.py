"""The vLLM plugin's table entry: a rebalance Gimbal's planner refuses goes to vLLM's own policy."""

from __future__ import annotations

import logging

import numpy as np

from _instances import skewed_counts
from gimbal_planner import check_plan, make_policy
from gimbal_planner.vllm_plugin import with_fallback


class RecordingDefault:
    """Stands in for vLLM's DefaultEplbPolicy: returns the contiguous map and counts its calls."""

    calls = 0

    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                          old_global_expert_indices=None):
        cls.calls += 1
        layers, experts = np.asarray(weight).shape
        return np.tile(np.arange(num_replicas, dtype=np.int64) % max(experts, 1), (layers, 1))


def test_good_loads_are_planned_by_gimbal():
    RecordingDefault.calls = 0
    policy = with_fallback(make_policy(), RecordingDefault)
    weight = skewed_counts(2, 4, 16, seed=5).sum(axis=1)
    phy2log = policy.rebalance_experts(weight, 20, 2, 2, 4)
    check_plan(phy2log, 16, 20, 4, 2)
    assert RecordingDefault.calls == 0 and policy.fallbacks == 0
    assert policy.last_quality is not None  # the planner ran


def test_loads_the_planner_refuses_go_to_vllms_policy_and_are_logged(caplog):
    RecordingDefault.calls = 0
    policy = with_fallback(make_policy(), RecordingDefault)
    weight = skewed_counts(2, 4, 16, seed=5).sum(axis=1)
    for bad in (np.where(np.arange(16) == 3, np.nan, weight), -weight, weight[:, :0]):
        with caplog.at_level(logging.WARNING, logger="gimbal_planner.vllm_plugin"):
            out = policy.rebalance_experts(bad, 20, 2, 2, 4)
        assert out.shape == (bad.shape[0], 20)
    assert RecordingDefault.calls == 3 and policy.fallbacks == 3
    assert "weight must be finite and >= 0" in caplog.text
    assert "vLLM's default policy plans it instead" in caplog.text
    # A later good rebalance is Gimbal's again.
    check_plan(policy.rebalance_experts(weight, 20, 2, 2, 4), 16, 20, 4, 2)
    assert RecordingDefault.calls == 3


def test_an_error_the_fallback_raises_too_is_vllms_own():
    class Refusing:
        @classmethod
        def rebalance_experts(cls, *args, **kwargs):
            raise RuntimeError("vLLM's policy refused it as well")

    policy = with_fallback(make_policy(), Refusing)
    try:
        policy.rebalance_experts(np.full((1, 8), np.nan), 8, 1, 1, 2)
    except RuntimeError as err:
        assert "refused it as well" in str(err)
    else:
        raise AssertionError("expected the fallback's error")
