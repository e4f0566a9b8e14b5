"""Per-source expert loads: what vLLM's EPLB sums away before it rebalances.

vLLM 0.33 counts, on each EP rank, the tokens *that rank* routed to each physical expert
(``EplbModelState.expert_load_pass``, filled by the router before dispatch), keeps a window of
those counts, folds them onto logical experts, and then all-reduces them over the EP group in
``EplbState.rearrange`` (``vllm/distributed/eplb/eplb_state.py``, through
``EplbState._allreduce_list``). The policy receives only the sum ``[layers, logical_experts]``;
which rank the tokens came from is gone. docs/vllm-integration.md cites the lines.

:class:`SourceLoadRecorder` keeps the counts apart: one ``[layers, experts]`` matrix per source
rank per step, in a sliding window of ``window`` steps, and hands the planner
``A[layer][source][expert]``. Its sum over sources is exactly what vLLM would have summed.
Accepts numpy arrays, torch tensors (moved to the host) or nested lists.
"""

from __future__ import annotations

import operator
import threading

import numpy as np

from ._arrays import to_numpy


def _rank_index(source, num_sources: int, what: str) -> int:
    """``source`` as a rank index in [0, num_sources): an integer, not a bool (numpy would take
    True as a mask and add the loads to every source) nor a float (a non-integer index)."""
    if isinstance(source, (bool, np.bool_)):
        raise ValueError(f"SourceLoadRecorder.{what}: source must be an integer rank, "
                         f"got {source!r}")
    try:
        index = operator.index(source)
    except TypeError:
        raise ValueError(f"SourceLoadRecorder.{what}: source must be an integer rank, "
                         f"got {source!r}") from None
    if not 0 <= index < num_sources:
        raise ValueError(f"SourceLoadRecorder.{what}: source {index} outside [0, {num_sources})")
    return index



# The most tokens one load may count: the planner's bound on a count (kMaxRoutingCount).
MAX_LOAD = 1e15

class SourceLoadRecorder:
    """A window of per-source logical-expert loads, ``[window, layers, sources, experts]``.

    ``record(source, loads)`` adds one source's ``[layers, experts]`` counts to the current step;
    ``record_all(loads)`` adds ``[sources, layers, experts]`` (what an all-gather of every rank's
    counts yields); ``step()`` closes the step (the oldest step leaves the window when it is
    full). ``matrix()`` is the window's sum ``[layers, sources, experts]`` including the open
    step; ``totals()`` its sum over sources, vLLM's ``weight``. Thread-safe.
    """

    def __init__(self, num_sources: int, num_layers: int, num_experts: int, window: int = 1000):
        for name, v in (("num_sources", num_sources), ("num_layers", num_layers),
                        ("num_experts", num_experts), ("window", window)):
            if int(v) != v or v <= 0:
                raise ValueError(f"SourceLoadRecorder: {name} must be a positive integer, got {v}")
        self.num_sources, self.num_layers = int(num_sources), int(num_layers)
        self.num_experts, self.window = int(num_experts), int(window)
        self._steps = np.zeros((self.window, self.num_layers, self.num_sources, self.num_experts))
        self._pos = 0
        self._recorded = 0  # steps closed so far (to report how full the window is)
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(layers, sources, experts) of :meth:`matrix`."""
        return (self.num_layers, self.num_sources, self.num_experts)

    def _checked(self, loads, shape: tuple[int, ...], what: str) -> np.ndarray:
        a = to_numpy(loads, np.float64)
        if a.shape != shape:
            raise ValueError(f"SourceLoadRecorder.{what}: expected shape {shape}, got {a.shape}")
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError(f"SourceLoadRecorder.{what}: loads must be finite and >= 0")
        # A token count the planner takes (its bound on one count); larger ones summed over the
        # window overflowed to inf and failed every rebalance of that window.
        if a.size and a.max() > MAX_LOAD:
            raise ValueError(f"SourceLoadRecorder.{what}: a load of {a.max():g} is more than "
                             f"the planner takes ({MAX_LOAD:g})")
        return a

    def record(self, source: int, loads) -> None:
        """Adds source rank ``source``'s ``[layers, experts]`` token counts to the open step."""
        source = _rank_index(source, self.num_sources, "record")
        a = self._checked(loads, (self.num_layers, self.num_experts), "record")
        with self._lock:
            self._steps[self._pos, :, source, :] += a

    def record_physical(self, source: int, loads, phy2log) -> None:
        """Like :meth:`record` for per-physical-slot counts ``[layers, num_physical]`` (vLLM's
        ``expert_load_pass`` layout), folded onto logical experts with ``phy2log``; slots whose
        id is negative (not yet filled) are dropped."""
        source = _rank_index(source, self.num_sources, "record_physical")
        raw = to_numpy(phy2log, None)
        if raw.dtype.kind not in "iu":  # 0.9 read as expert 0, NaN as a dropped slot
            raise ValueError("SourceLoadRecorder.record_physical: phy2log must hold integers, "
                             f"got {raw.dtype}")
        p = raw.astype(np.int64)
        a = self._checked(loads, p.shape, "record_physical")
        if p.ndim != 2 or p.shape[0] != self.num_layers or (p >= self.num_experts).any():
            raise ValueError("SourceLoadRecorder.record_physical: phy2log must be "
                             f"[{self.num_layers}, slots] with ids < {self.num_experts}")
        logical = np.zeros((self.num_layers, self.num_experts))
        for layer in range(self.num_layers):
            ok = p[layer] >= 0
            np.add.at(logical[layer], p[layer][ok], a[layer][ok])
        self.record(source, logical)

    def record_all(self, loads) -> None:
        """Adds every source's counts at once: ``[sources, layers, experts]``."""
        a = self._checked(loads, (self.num_sources, self.num_layers, self.num_experts),
                          "record_all")
        with self._lock:
            self._steps[self._pos] += a.transpose(1, 0, 2)

    def step(self) -> None:
        """Closes the open step; the next records start a new one."""
        with self._lock:
            self._pos = (self._pos + 1) % self.window
            self._steps[self._pos] = 0
            self._recorded += 1

    def steps_recorded(self) -> int:
        """Closed steps currently in the window (at most ``window - 1`` plus the open one)."""
        with self._lock:
            return min(self._recorded, self.window - 1)

    def matrix(self) -> np.ndarray:
        """``[layers, sources, experts]``: the window's counts per source (float64, a copy)."""
        with self._lock:
            return self._steps.sum(axis=0)

    def totals(self) -> np.ndarray:
        """``[layers, experts]``: the sum over sources, i.e. what vLLM all-reduces."""
        return self.matrix().sum(axis=1)

    def clear(self) -> None:
        with self._lock:
            self._steps[:] = 0
            self._pos = 0
            self._recorded = 0
