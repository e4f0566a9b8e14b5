"""vLLM 0.33's default EPLB policy and Gimbal's adapter on the same expert loads.

Runs in the venv bench/vllm_eplb/run.sh makes (vllm==0.33.0, torch, gimbal_planner). For each
shape it draws class-skewed per-source loads (sources in contiguous blocks by class, each class
mostly on its own experts), sums them over sources into vLLM's ``weight``, and plans with

* ``vllm``: ``EPLB_POLICIES["default"]`` as vLLM ships it (DeepSeek's EPLB);
* ``gimbal``: Gimbal's adapter installed the way a deployment installs it
  (``gimbal_planner.vllm_plugin.register()`` with ``GIMBAL_EPLB=1``, then the same table entry),
  with a recorder holding the per-source loads;
* ``gimbal-blind``: the adapter without a recorder (vLLM's summed loads only).

Every plan goes through vLLM's own ``compute_logical_maps`` and must satisfy the same invariants
(shape, dtype, every expert replicated, counts summing to the slots, maps consistent, and equal
to gimbal_planner.maps.logical_maps). Printed per shape and policy: max/mean rank load with
tokens split evenly over replicas (vLLM's routing) on the planning window and on the next
(drifted) window, the cross-node token fraction under that routing, slots whose expert changed
from vLLM's initial layout, and the planning time. Exit 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

os.environ.setdefault("GIMBAL_EPLB", "1")
from vllm.config.parallel import EPLBConfig  # noqa: E402
from vllm.distributed.eplb.eplb_state import EplbState, compute_logical_maps  # noqa: E402
from vllm.distributed.eplb.policy import EPLB_POLICIES, AbstractEplbPolicy  # noqa: E402

import gimbal_planner  # noqa: E402
from gimbal_planner import SourceLoadRecorder, check_plan, logical_maps, max_over_mean  # noqa: E402
from gimbal_planner import vllm_plugin  # noqa: E402

VLLM_DEFAULT = EPLB_POLICIES["default"]

# name, layers, experts, groups, nodes, ranks, slots per rank
SHAPES = [
    ("small 16e/4gpu/2node", 2, 16, 2, 2, 4, 5),
    ("32e/8gpu/2node", 4, 32, 4, 2, 8, 5),
    ("256e/32gpu/4node", 4, 256, 8, 4, 32, 9),
    ("256e/64gpu/8node", 4, 256, 8, 8, 64, 5),
]


def skewed(layers, sources, experts, classes, seed, drift=0):
    """Per-source loads [layers, sources, experts]: class c (a contiguous block of sources) puts
    80% of its tokens on its own permutation of Zipf(1.0) popularity over all experts; ``drift``
    random swaps of that permutation model the next window."""
    rng = np.random.default_rng(seed)
    out = np.zeros((layers, sources, experts))
    for layer in range(layers):
        for c in range(classes):
            perm = np.random.default_rng(seed * 1000 + layer * 10 + c).permutation(experts)
            for _ in range(drift):
                i, j = rng.integers(0, experts, 2)
                perm[[i, j]] = perm[[j, i]]
            zipf = (np.arange(experts) + 1.0) ** -1.0
            pop = 0.2 / experts + 0.8 * zipf[np.argsort(perm)] / zipf.sum()
            for s in range(c * sources // classes, (c + 1) * sources // classes):
                out[layer, s] = rng.multinomial(4000, pop / pop.sum())
    return out


def cross_node(counts, phy2log, ranks, nodes):
    """Token fraction leaving the source's node, tokens split evenly over replicas."""
    layers, sources, experts = counts.shape
    per_node = ranks // nodes
    slot_node = np.arange(phy2log.shape[1]) // (phy2log.shape[1] // ranks) // per_node
    _, logcnt = logical_maps(phy2log, experts)
    away = 0.0
    for layer in range(layers):
        # replicas of each expert on each node, [experts, nodes]
        on_node = np.zeros((experts, nodes))
        np.add.at(on_node, (phy2log[layer], slot_node), 1)
        share_here = on_node / logcnt[layer][:, None]
        src_node = (np.arange(sources) * ranks // sources) // per_node
        away += (counts[layer] * (1 - share_here[:, src_node].T)).sum()
    return away / counts.sum()


def check(name, phy2log, experts, replicas, ranks, layers):
    """vLLM's own derived maps, and the invariants both policies must meet."""
    assert isinstance(phy2log, torch.Tensor) and phy2log.device.type == "cpu", name
    assert phy2log.dtype == torch.int64, f"{name}: dtype {phy2log.dtype}"
    check_plan(phy2log.numpy(), experts, replicas, ranks, layers)
    log2phy, logcnt = compute_logical_maps(phy2log, experts)
    ours_log2phy, ours_logcnt = logical_maps(phy2log.numpy(), experts)
    assert np.array_equal(logcnt.numpy(), ours_logcnt), f"{name}: logcnt differs"
    assert np.array_equal(log2phy.numpy(), ours_log2phy), f"{name}: log2phy differs"
    assert (logcnt >= 1).all() and (logcnt.sum(dim=1) == replicas).all(), name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=4, help="traffic classes (source blocks)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shapes", type=int, default=len(SHAPES), help="the first N shapes")
    args = ap.parse_args()

    # The deployment path: the plugin replaces the table entry EplbState reads.
    vllm_plugin.register()
    installed = EPLB_POLICIES["default"]
    assert installed is not VLLM_DEFAULT and issubclass(installed, AbstractEplbPolicy)
    assert EPLB_POLICIES[EPLBConfig().policy] is installed
    assert EplbState.build_initial_global_physical_to_logical_map(4, 2) == [0, 1, 2, 3, 0, 1]
    print(f"vllm EPLB_POLICIES['default'] -> {installed.__module__}.{installed.__qualname__} "
          f"(gimbal_planner from {os.path.dirname(gimbal_planner.__file__)})")

    failures = 0
    header = (f"{'shape':24} {'policy':13} {'max/mean':>9} {'next win':>9} {'x-node':>7} "
              f"{'changed':>8} {'seconds':>8}")
    print(header)
    print("-" * len(header))
    for name, layers, experts, groups, nodes, ranks, per_rank in SHAPES[: args.shapes]:
        replicas = ranks * per_rank
        sources = ranks
        counts = skewed(layers, sources, experts, args.classes, args.seed)
        following = skewed(layers, sources, experts, args.classes, args.seed, drift=experts // 16)
        weight = torch.from_numpy(counts.sum(axis=1)).to(torch.int32)  # vLLM's window dtype
        initial = torch.tensor(
            EplbState.build_initial_global_physical_to_logical_map(experts, replicas - experts)
        ).repeat(layers, 1)
        recorder = SourceLoadRecorder(sources, layers, experts)
        recorder.record_all(counts.transpose(1, 0, 2))
        installed.recorder = recorder
        blind = gimbal_planner.make_policy()
        for policy_name, policy in (("vllm", VLLM_DEFAULT), ("gimbal", installed),
                                    ("gimbal-blind", blind)):
            start = time.perf_counter()
            phy2log = policy.rebalance_experts(weight, replicas, groups, nodes, ranks,
                                               initial.clone())
            seconds = time.perf_counter() - start
            try:
                check(f"{name}/{policy_name}", phy2log, experts, replicas, ranks, layers)
                ok = ""
            except AssertionError as e:
                failures += 1
                ok = f"  INVARIANT FAILED: {e}"
            p = phy2log.numpy()
            print(f"{name:24} {policy_name:13} {max_over_mean(counts.sum(axis=1), p, ranks):9.3f} "
                  f"{max_over_mean(following.sum(axis=1), p, ranks):9.3f} "
                  f"{cross_node(counts, p, ranks, nodes):7.3f} "
                  f"{int((p != initial.numpy()).sum()):8d} {seconds:8.3f}{ok}")
    print(f"{'all invariants hold' if failures == 0 else f'{failures} plan(s) FAILED'}: "
          f"shapes, dtypes, replicas >= 1, counts sum to slots, vLLM's compute_logical_maps "
          f"equal to gimbal_planner's")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
