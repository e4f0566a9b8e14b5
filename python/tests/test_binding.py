"""The extension module's Planner with bad arguments and concurrent calls: ValueError, never a
crash or a plan made from values nobody passed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _instances import skewed_counts
from gimbal_planner._planner import Planner


def plan(planner, counts, gpus=4, slots=5, current=None, **topology):
    settings = dict(gpus_per_node=0, alpha=0.2, beta=1.0, expert_groups=1, expert_bytes=1.0)
    settings.update(topology)
    return planner.plan(counts, gpus=gpus, slots_per_gpu=slots, current=current, **settings)


def test_route_and_quality_refuse_while_a_plan_runs():
    # plan() runs without the GIL and replaces the plan route() and quality() read: from another
    # thread they read it while it was freed (a segfault, or a torn route).
    counts = skewed_counts(layers=40, sources=16, experts=64, seed=3)
    planner = Planner("gimbal")
    plan(planner, counts, gpus=16, slots=5)
    done, enough = threading.Event(), threading.Event()

    # Plans until the main thread has been refused a few times (a loaded machine may schedule it
    # late), at most 500.
    def replan():
        for _ in range(500):
            plan(planner, counts, gpus=16, slots=5)
            if enough.is_set():
                break
        done.set()

    t = threading.Thread(target=replan)
    t.start()
    refused = 0
    while not done.is_set():
        try:
            route = planner.route(0, 0, 0)
            assert abs(sum(w for _, w in route) - 1) < 1e-5 or not route
            planner.quality()
        except ValueError as e:
            assert "planner is planning" in str(e)
            refused += 1
            if refused >= 3:
                enough.set()
    t.join()
    assert refused > 0
    planner.quality()  # and after the plans, answered


def test_current_ids_beyond_int32_are_refused_not_wrapped():
    counts = np.ones((1, 4, 4))
    planner = Planner("gimbal")
    good = np.array([[0, 1, 2, 3]], dtype=np.int64)
    plan(planner, counts, gpus=4, slots=1, current=good)
    for bad in (good + 2**32, good - 2**32):
        with pytest.raises(ValueError, match="is not an expert index"):
            plan(planner, counts, gpus=4, slots=1, current=bad)
    with pytest.raises(ValueError, match="is not an expert index"):
        plan(planner, counts, gpus=4, slots=1, current=good.astype(np.uint64) + 2**40)
    with pytest.raises(ValueError, match="integer array"):
        plan(planner, counts, gpus=4, slots=1, current=good + 0.5)
    # Array-likes are converted as before: a nested list is a placement too.
    plan(planner, counts, gpus=4, slots=1, current=[[0, 1, 2, 3]])
    with pytest.raises(ValueError, match="is not an expert index"):
        plan(planner, counts, gpus=4, slots=1, current=[[0, 1, 2, 2**33]])


def test_out_of_range_topology_values_fail_instead_of_becoming_defaults():
    counts = np.ones((1, 4, 4))
    planner = Planner("gimbal")
    for key, value in (("expert_groups", -3), ("expert_bytes", -5.0),
                       ("expert_bytes", float("nan")), ("expert_bytes", float("inf"))):
        with pytest.raises(ValueError, match=key):
            plan(planner, counts, gpus=4, slots=1, **{key: value})
    plan(planner, counts, gpus=4, slots=1, expert_groups=0, expert_bytes=0.0)  # 0: the default


def test_a_dimension_past_int32_is_refused_before_it_is_read(tmp_path):
    # 2^32 + 4 experts, as a sparse file: a cast to int planned 4 experts and returned.
    try:
        counts = np.memmap(tmp_path / "counts", dtype=np.float64, mode="w+",
                           shape=(1, 1, 2**32 + 4))
    except (OSError, ValueError) as e:
        pytest.skip(f"no sparse file here: {e}")
    with pytest.raises(ValueError, match=r"counts: experts \(4294967300\) is more than"):
        plan(Planner("gimbal"), counts, gpus=4, slots=1)


def test_a_nul_in_the_policy_or_params_is_refused_not_cut_off():
    for policy, params in (("gimbal\0anything", ""), ("gimbal", "load_weight=2\0;no_such_key=1")):
        with pytest.raises(ValueError, match="must not contain NUL"):
            Planner(policy, params)
