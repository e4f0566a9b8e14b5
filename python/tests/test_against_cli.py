"""The adapter's plans equal `gimbal place` on the same input.

Both reach the same planner: the adapter through the C API (gimbal_planner_plan) compiled into
the package, `gimbal place` through the CLI build (GIMBAL_BIN; python/test.sh and ctest set
it). The counts the adapter planned on (``last_counts``) are written as the CLI's statistics
file, the topology vLLM's arguments imply as its topology file, and vLLM's current map as
``--current``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _instances import skewed_counts
from gimbal_planner import SourceLoadRecorder, check_plan, logical_maps, make_policy

GIMBAL_BIN = os.environ.get("GIMBAL_BIN", "")
pytestmark = pytest.mark.skipif(
    not GIMBAL_BIN, reason="GIMBAL_BIN unset and no build/release/src/cli/gimbal")


def run_place(tmp: Path, counts, topology: dict, current, policy: str, sets: list[str]) -> dict:
    if not Path(GIMBAL_BIN).is_file():
        pytest.fail(f"GIMBAL_BIN={GIMBAL_BIN} does not exist")
    layers, sources, experts = counts.shape
    (tmp / "stats.json").write_text(json.dumps({
        "format": "gimbal.routing_stats/1", "layers": layers, "sources": sources,
        "experts": experts, "counts": counts.tolist()}))
    (tmp / "topology.json").write_text(json.dumps(topology))
    cmd = [GIMBAL_BIN, "place", "--stats", str(tmp / "stats.json"), "--topology",
           str(tmp / "topology.json"), "--policy", policy, "--json", str(tmp / "out.json")]
    if current is not None:
        (tmp / "current.json").write_text(json.dumps({
            "format": "gimbal.placement/1", "layers": layers, "experts": experts,
            "gpus": topology["gpus"], "slots_per_gpu": topology["slots_per_gpu"],
            "phy2log": np.asarray(current).tolist()}))
        cmd += ["--current", str(tmp / "current.json")]
    for kv in sets:
        cmd += ["--set", kv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return json.loads((tmp / "out.json").read_text())


CASES = [
    # policy, params, layers, sources, experts, replicas, groups, nodes, ranks, recorder, current
    ("gimbal", "", 2, 8, 16, 20, 2, 2, 4, True, False),
    ("gimbal", "", 2, 8, 16, 20, 2, 2, 4, True, True),
    ("gimbal", "traffic_weight=0.25;migration_weight=0.002", 2, 8, 16, 20, 2, 2, 4, True, True),
    ("gimbal", "", 1, 8, 32, 40, 1, 2, 8, False, False),  # source-blind: weight split evenly
    ("gimbal", "max_moves_per_layer=6", 2, 4, 16, 16, 1, 1, 4, True, True),
    ("eplb", "", 2, 8, 32, 48, 4, 2, 8, True, False),
]


@pytest.mark.parametrize(
    "policy,params,layers,sources,experts,replicas,groups,nodes,ranks,use_recorder,use_current",
    CASES)
def test_plan_equals_gimbal_place(tmp_path, policy, params, layers, sources, experts, replicas,
                                  groups, nodes, ranks, use_recorder, use_current):
    counts = skewed_counts(layers, sources, experts, seed=layers * 100 + experts)
    recorder = None
    if use_recorder:
        recorder = SourceLoadRecorder(sources, layers, experts, window=4)
        for s in range(sources):
            recorder.record(s, counts[:, s, :])
    adapter = make_policy(policy=policy, params=params, alpha=0.2, beta=1.0, recorder=recorder)
    weight = counts.sum(axis=1)
    current = None
    if use_current:
        current = adapter.rebalance_experts(weight[:, ::-1].copy(), replicas, groups, nodes, ranks)
    phy2log = adapter.rebalance_experts(weight, replicas, groups, nodes, ranks, current)
    check_plan(phy2log, experts, replicas, ranks, layers)
    planned_on = adapter.last_counts
    if use_recorder:
        assert np.array_equal(planned_on, counts)  # the recorder's counts, unchanged
    else:
        assert planned_on.shape == (layers, ranks, experts)
        np.testing.assert_allclose(planned_on.sum(axis=1), weight)

    topology = {"gpus": ranks, "gpus_per_node": ranks // nodes if nodes > 1 else 0,
                "alpha": 0.2, "beta": 1.0, "slots_per_gpu": replicas // ranks,
                "expert_groups": groups}
    out = run_place(tmp_path, planned_on, topology, current, policy,
                    [kv for kv in params.split(";") if kv])
    cli = out["placement"]
    assert np.array_equal(np.array(cli["phy2log"]), phy2log)
    # The maps vLLM derives (log2phy, logcnt) agree with the ones `gimbal place` writes.
    log2phy, logcnt = logical_maps(phy2log, experts)
    assert logcnt.tolist() == cli["logcnt"]
    for layer in range(layers):
        for x in range(experts):
            assert log2phy[layer, x, : logcnt[layer, x]].tolist() == cli["log2phy"][layer][x]
    quality = adapter.last_quality
    assert quality["experts_moved"] == out["quality"]["experts_moved"]
    assert quality["mean_max_over_mean"] == pytest.approx(out["quality"]["mean_max_over_mean"])
    assert quality["cross_node_fraction"] == pytest.approx(out["quality"]["cross_node_fraction"])
