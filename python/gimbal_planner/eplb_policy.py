"""Gimbal's planner behind the call vLLM 0.33 makes to its EPLB policy.

vLLM 0.33 (``vllm/distributed/eplb/policy/abstract.py``) calls, on every EP rank at each
rebalance, the class method::

    policy.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks,
                             old_global_expert_indices=None) -> physical_to_logical_map

with ``weight`` ``[layers, num_logical]`` (the window's loads summed over ranks, on the host),
``old_global_expert_indices`` the current ``[layers, num_replicas]`` map, and expects
``[layers, num_replicas]`` int64 back; it derives the logical-to-physical map and the replica
counts from it itself (see :mod:`gimbal_planner.maps`). :class:`GimbalEplbPolicy` has that
method. It plans with Gimbal's planner (the C API ``gimbal_planner_plan``, the same call as
``gimbal place``) on ``[layers, sources, experts]`` counts:

* from its ``recorder`` (:class:`~gimbal_planner.recorder.SourceLoadRecorder`, or a dict of
  them keyed by ``(layers, experts)``, one per model) when one has ``weight``'s layers and
  experts: each expert's total is ``weight``'s, split over sources
  in the recorder's proportions (the recorder's own counts, unchanged, when their sum over
  sources equals ``weight``);
* otherwise ``weight`` split evenly over the ``num_ranks`` sources: no locality to exploit, so
  the plan only balances load and limits copies.

The plan starts from ``old_global_expert_indices`` when it is a placement (every expert in
every layer, no empty slot), else from the contiguous layout. Topology: ``num_ranks`` GPUs, ``num_ranks / num_nodes`` per node, ``num_replicas / num_ranks``
slots each, source ``s`` on GPU ``s * num_ranks / sources``. The result is a torch tensor when
``weight`` is one, a numpy array otherwise.
"""

from __future__ import annotations

import operator
import threading

import numpy as np

from ._arrays import like, to_numpy
from .recorder import SourceLoadRecorder

# The most tokens one load may count: the planner's bound on a count (kMaxRoutingCount in
# src/policy/placement/routing_stats.h), checked on the weight vLLM passes so that the error names
# it rather than the per-source split made from it.
MAX_WEIGHT = 1e15
# Physical slots of a layer and cells of the counts, at most (kMaxSlots, kMaxRoutingCells).
MAX_SLOTS = 1 << 20
MAX_ROUTING_CELLS = 1 << 26


class GimbalEplbPolicy:
    """vLLM EPLB policy over Gimbal's planner. Configure with :meth:`configured` (vLLM holds the
    class, not an instance, so settings are class attributes)."""

    policy: str = "gimbal"  # "gimbal" or "eplb" (the package is built without "exact"'s solver)
    params: str = ""  # "key=value;..." as for `gimbal place --set`
    alpha: float = 0.2  # cost of a token crossing GPUs within a node
    beta: float = 1.0  # ... across nodes
    expert_bytes: float = 1.0
    recorder: SourceLoadRecorder | dict | None = None

    # What the last call planned on and how the planner scored it (inspection, tests).
    last_counts: np.ndarray | None = None
    last_quality: dict | None = None

    _lock = threading.Lock()
    _planner = None

    @classmethod
    def configured(cls, *, policy: str = "gimbal", params: str = "", alpha: float = 0.2,
                   beta: float = 1.0, expert_bytes: float = 1.0,
                   recorder: SourceLoadRecorder | dict | None = None,
                   name: str = "GimbalEplbPolicy") -> type:
        """A subclass with these settings; the planner is created (and its parameters checked:
        ValueError naming an unknown policy or key) here, not at the first rebalance."""
        from ._planner import Planner  # noqa: PLC0415 - the extension module

        if not 0 <= alpha <= beta:
            raise ValueError(f"GimbalEplbPolicy: need 0 <= alpha <= beta, got {alpha}, {beta}")
        # The planner's bounds (kMaxExpertBytes in src/policy/placement/placement_problem.h);
        # NaN fails the comparison.
        if not 0 < expert_bytes <= 1e15:
            raise ValueError("GimbalEplbPolicy: expert_bytes must be in (0, 1e15], "
                             f"got {expert_bytes}")
        planner = Planner(policy, params)
        return type(name, (cls,), {
            "policy": policy, "params": params, "alpha": float(alpha), "beta": float(beta),
            "expert_bytes": float(expert_bytes), "recorder": recorder,
            "_lock": threading.Lock(), "_planner": planner,
            "last_counts": None, "last_quality": None,
        })

    @classmethod
    def source_counts(cls, weight: np.ndarray, num_ranks: int) -> np.ndarray:
        """``[layers, sources, experts]`` counts whose sum over sources is ``weight``."""
        layers, experts = weight.shape
        rec = cls.recorder
        if isinstance(rec, dict):
            rec = rec.get((layers, experts))
        if rec is None or (rec.num_layers, rec.num_experts) != (layers, experts):
            return np.repeat(weight[:, None, :] / num_ranks, num_ranks, axis=1)
        counts = rec.matrix()
        totals = counts.sum(axis=1)
        if np.array_equal(totals, weight):
            return counts
        even = np.full_like(counts, 1.0 / rec.num_sources)
        shares = np.divide(counts, totals[:, None, :], out=even, where=totals[:, None, :] > 0)
        return shares * weight[:, None, :]

    @classmethod
    def rebalance_experts(cls, weight, num_replicas: int, num_groups: int, num_nodes: int,
                          num_ranks: int, old_global_expert_indices=None):
        """vLLM 0.33's policy call; returns phy2log ``[layers, num_replicas]`` (int64)."""
        w = to_numpy(weight, np.float64)
        if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"GimbalEplbPolicy: weight must be [layers, experts], got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("GimbalEplbPolicy: weight must be finite and >= 0")
        layers, experts = w.shape
        if w.max() > MAX_WEIGHT:
            layer, expert = np.unravel_index(w.argmax(), w.shape)
            raise ValueError(f"GimbalEplbPolicy: weight[{layer}][{expert}] ({w.max()}) is more "
                             f"than the planner takes ({MAX_WEIGHT})")
        sizes = {}
        for name, v in (("num_replicas", num_replicas), ("num_groups", num_groups),
                        ("num_nodes", num_nodes), ("num_ranks", num_ranks)):
            # An integer (Python or numpy, not a bool), as vLLM passes: 16.0 or NaN is refused
            # here, naming the argument, rather than failing further in.
            try:
                if isinstance(v, (bool, np.bool_)):
                    raise TypeError
                sizes[name] = operator.index(v)
            except TypeError:
                raise ValueError(f"GimbalEplbPolicy: {name} must be a positive integer, "
                                 f"got {v!r}") from None
            if sizes[name] <= 0:
                raise ValueError(f"GimbalEplbPolicy: {name} must be a positive integer, got {v!r}")
        num_replicas, num_groups = sizes["num_replicas"], sizes["num_groups"]
        num_nodes, num_ranks = sizes["num_nodes"], sizes["num_ranks"]
        if num_replicas % num_ranks != 0 or num_replicas < experts:
            raise ValueError(f"GimbalEplbPolicy: num_replicas ({num_replicas}) must be a multiple "
                             f"of num_ranks ({num_ranks}) and at least the experts ({experts})")
        if num_ranks % num_nodes != 0:
            raise ValueError(f"GimbalEplbPolicy: num_ranks ({num_ranks}) must be a multiple of "
                             f"num_nodes ({num_nodes})")
        # The planner's own bounds, checked before the [layers, num_ranks, experts] counts are
        # built from them (num_ranks of 2^31 took the host past its memory first).
        if num_replicas > MAX_SLOTS or layers * num_ranks * experts > MAX_ROUTING_CELLS:
            raise ValueError(f"GimbalEplbPolicy: num_replicas ({num_replicas}) must be at most "
                             f"{MAX_SLOTS} and layers x num_ranks x experts "
                             f"({layers * num_ranks * experts}) at most {MAX_ROUTING_CELLS}")
        current = None
        if old_global_expert_indices is not None:
            old = to_numpy(old_global_expert_indices, np.int64)
            # A map with empty (-1) slots or another shape (vLLM's elastic scaling) is no
            # placement to start from.
            if old.shape == (layers, num_replicas) and old.min() >= 0 and old.max() < experts and \
                    all(np.unique(row).size == experts for row in old):
                current = np.ascontiguousarray(old, dtype=np.int32)
        if current is None and experts % num_ranks != 0:
            # The planner's own default (contiguous, what `gimbal place` assumes without
            # --current) needs the experts to divide over the ranks; vLLM's initial layout
            # (experts in order, then the redundant slots round-robin) does not.
            current = np.tile(np.arange(num_replicas, dtype=np.int32) % experts, (layers, 1))
        counts = np.ascontiguousarray(cls.source_counts(w, num_ranks), dtype=np.float64)
        with cls._lock:
            if cls._planner is None:  # GimbalEplbPolicy itself: the defaults
                from ._planner import Planner  # noqa: PLC0415

                cls._planner = Planner(cls.policy, cls.params)
            phy2log = cls._planner.plan(
                counts, gpus=num_ranks, gpus_per_node=num_ranks // num_nodes if num_nodes > 1 else 0,
                alpha=cls.alpha, beta=cls.beta, expert_groups=num_groups,
                expert_bytes=cls.expert_bytes, slots_per_gpu=num_replicas // num_ranks,
                current=current)
            cls.last_counts = counts
            cls.last_quality = cls._planner.quality()
        return like(phy2log.astype(np.int64), weight)


def make_policy(**settings) -> type:
    """``GimbalEplbPolicy.configured(**settings)``."""
    return GimbalEplbPolicy.configured(**settings)
