"""Expert maps in vLLM's EPLB layout, and the invariants every plan must satisfy.

A plan is ``phy2log``: ``[layers, num_physical]`` logical expert ids, slot ``r * per_rank + i``
being slot ``i`` of EP rank ``r``. vLLM derives the two other maps from it after each rebalance:
``log2phy`` ``[layers, num_logical, max_replicas]`` (the slots of each expert in ascending
order, padded with -1) and ``logcnt`` ``[layers, num_logical]`` (replicas per expert).
:func:`logical_maps` computes both the same way; :func:`check_plan` raises ``AssertionError``
naming the first violated invariant. Plain numpy.
"""

from __future__ import annotations

import numpy as np


def logical_maps(phy2log, num_logical: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (log2phy, logcnt) for phy2log ``[layers, num_physical]``; negative ids are empty
    slots and are skipped."""
    p = np.asarray(phy2log)
    if p.ndim != 2:
        raise ValueError(f"phy2log must be [layers, num_physical], got shape {p.shape}")
    if p.size and (p.max() >= num_logical):
        raise ValueError(f"phy2log holds expert {int(p.max())} >= num_logical ({num_logical})")
    layers, num_physical = p.shape
    logcnt = np.zeros((layers, num_logical), dtype=np.int64)
    for layer in range(layers):
        ids = p[layer][p[layer] >= 0]
        logcnt[layer] = np.bincount(ids, minlength=num_logical)
    width = int(logcnt.max()) if logcnt.size else 0
    log2phy = np.full((layers, num_logical, width), -1, dtype=np.int64)
    filled = np.zeros((layers, num_logical), dtype=np.int64)
    for slot in range(num_physical):
        for layer in range(layers):
            x = int(p[layer, slot])
            if x >= 0:
                log2phy[layer, x, filled[layer, x]] = slot
                filled[layer, x] += 1
    return log2phy, logcnt


def check_plan(phy2log, num_logical: int, num_replicas: int, num_ranks: int,
               layers: int | None = None) -> None:
    """Asserts what vLLM relies on after a rebalance: the shape (``num_replicas`` slots, the
    same number on every rank), every id a logical expert, every expert at least one replica,
    replica counts summing to the physical slots, and log2phy/logcnt consistent with
    phy2log."""
    p = np.asarray(phy2log)
    assert p.ndim == 2, f"phy2log has {p.ndim} dimensions, expected 2"
    if layers is not None:
        assert p.shape[0] == layers, f"phy2log has {p.shape[0]} layers, expected {layers}"
    num_physical = p.shape[1]
    assert num_physical == num_replicas, f"{num_physical} slots, expected {num_replicas}"
    assert np.issubdtype(p.dtype, np.integer), f"phy2log dtype {p.dtype} is not integral"
    assert num_physical % num_ranks == 0, (
        f"{num_physical} physical slots do not divide over {num_ranks} ranks")
    assert p.min() >= 0 and p.max() < num_logical, (
        f"phy2log ids outside [0, {num_logical}): min {p.min()}, max {p.max()}")
    log2phy, logcnt = logical_maps(p, num_logical)
    assert (logcnt >= 1).all(), (
        f"expert without a replica: layer/expert {np.argwhere(logcnt < 1)[0].tolist()}")
    assert (logcnt.sum(axis=1) == num_physical).all(), "replica counts do not sum to the slots"
    for layer in range(p.shape[0]):
        for x in range(num_logical):
            slots = log2phy[layer, x, : logcnt[layer, x]]
            assert (p[layer, slots] == x).all(), f"log2phy of layer {layer}, expert {x} is wrong"
            assert (log2phy[layer, x, logcnt[layer, x]:] == -1).all(), "log2phy padding is not -1"


def rank_loads(weight, phy2log, num_ranks: int) -> np.ndarray:
    """Per-rank load ``[layers, num_ranks]`` with each expert's load split evenly over its
    replicas (how vLLM spreads tokens over replicas)."""
    w = np.asarray(weight, dtype=np.float64)
    p = np.asarray(phy2log)
    layers, num_physical = p.shape
    _, logcnt = logical_maps(p, w.shape[1])
    per_slot = np.take_along_axis(w / np.maximum(logcnt, 1), p, axis=1)
    return per_slot.reshape(layers, num_ranks, num_physical // num_ranks).sum(axis=2)


def max_over_mean(weight, phy2log, num_ranks: int) -> float:
    """Max rank load over mean rank load, averaged over layers (1.0 is perfect balance)."""
    loads = rank_loads(weight, phy2log, num_ranks)
    mean = loads.mean(axis=1)
    ok = mean > 0
    return float((loads.max(axis=1)[ok] / mean[ok]).mean()) if ok.any() else 1.0
