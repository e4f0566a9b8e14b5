"""Puts Gimbal's planner into a vLLM 0.33 deployment (docs/vllm-integration.md).

vLLM 0.33 has no setting that names a custom EPLB policy: ``--eplb-config``'s ``policy`` only
accepts ``"default"``, looked up in the table ``vllm.distributed.eplb.policy.EPLB_POLICIES``.
It does load every ``vllm.general_plugins`` entry point in each of its processes (API server,
engine core, workers) before the model is built; this package declares :func:`register` as one.
With ``GIMBAL_EPLB`` unset or ``0`` it does nothing. Otherwise it **replaces the table's
``"default"`` entry** with a :class:`~gimbal_planner.eplb_policy.GimbalEplbPolicy` subclass, so
``--enable-eplb`` runs Gimbal's planner where vLLM's default would run (both the synchronous
rebalance and the async worker read ``EplbState.policy``, set from that table).

With ``GIMBAL_EPLB_SOURCES=1`` it also keeps per-source loads: it wraps ``EplbState.rearrange``
and ``EplbState._allreduce_list`` so that, during a rebalance, each rank's window of
logical-expert loads is all-gathered over the EP group (one ``[ranks, layers, experts]`` tensor
per model) into a :class:`~gimbal_planner.recorder.SourceLoadRecorder` *before* vLLM
all-reduces it. Every rank records the same matrix and plans the same placement. Rebalances that
do not come from this rank's own window (profiling, elastic scaling, ``use_last_expert_load``)
clear the recorders, and the policy falls back to the source-blind split.

Environment: ``GIMBAL_EPLB`` (``1``: on), ``GIMBAL_EPLB_POLICY`` (``gimbal``),
``GIMBAL_EPLB_PARAMS`` (``key=value;...``), ``GIMBAL_EPLB_ALPHA`` (0.2), ``GIMBAL_EPLB_BETA``
(1.0), ``GIMBAL_EPLB_SOURCES`` (``0``).
"""

from __future__ import annotations

import logging
import os
import threading

from .eplb_policy import GimbalEplbPolicy
from .recorder import SourceLoadRecorder

_log = logging.getLogger(__name__)
_installed: type | None = None
_recorders: dict[tuple[int, int], SourceLoadRecorder] = {}
_state = threading.local()


def policy_from_env(env=os.environ) -> type:
    """The configured policy class (no vLLM needed); ValueError for bad settings."""
    return GimbalEplbPolicy.configured(
        policy=env.get("GIMBAL_EPLB_POLICY", "gimbal"), params=env.get("GIMBAL_EPLB_PARAMS", ""),
        alpha=float(env.get("GIMBAL_EPLB_ALPHA", "0.2")),
        beta=float(env.get("GIMBAL_EPLB_BETA", "1.0")), recorder=_recorders)


def register() -> None:
    """The ``vllm.general_plugins`` entry point. Idempotent (vLLM may call it more than once)."""
    global _installed
    if os.environ.get("GIMBAL_EPLB", "0") in ("", "0") or _installed is not None:
        return
    from vllm.distributed.eplb import policy as eplb_policies  # noqa: PLC0415

    configured = policy_from_env()
    cls = with_fallback(configured, eplb_policies.EPLB_POLICIES["default"],
                        eplb_policies.AbstractEplbPolicy)
    eplb_policies.EPLB_POLICIES["default"] = cls
    _installed = cls
    if os.environ.get("GIMBAL_EPLB_SOURCES", "0") not in ("", "0"):
        _wrap_eplb_state()


def with_fallback(policy: type, fallback: type, base: type = object) -> type:
    """``policy`` (a configured GimbalEplbPolicy) as vLLM's table entry: a rebalance that Gimbal's
    planner refuses (bad loads, an unexpected shape: any exception) is logged and planned by
    ``fallback`` (vLLM's own default policy, what the deployment runs without Gimbal) instead.
    vLLM 0.34 stops the engine when its async EPLB worker's policy raises (0.33 stopped
    rebalancing for good), so an error here must not reach it; one that ``fallback`` raises
    too is vLLM's own and goes on to it."""

    class GimbalEplbPolicy(policy, base):  # noqa: D101 (the docstring above)
        fallbacks = 0  # rebalances the fallback planned

        @classmethod
        def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                              old_global_expert_indices=None):
            try:
                return super().rebalance_experts(weight, num_replicas, num_groups, num_nodes,
                                                 num_ranks, old_global_expert_indices)
            except Exception as err:  # noqa: BLE001 (any error: see above)
                cls.fallbacks += 1
                _log.warning("gimbal_planner: Gimbal's planner refused this rebalance (%s); "
                             "vLLM's default policy plans it instead (%d so far)", err,
                             cls.fallbacks)
            return fallback.rebalance_experts(weight, num_replicas, num_groups, num_nodes,
                                              num_ranks, old_global_expert_indices)

    GimbalEplbPolicy.__module__ = __name__
    return GimbalEplbPolicy


def _wrap_eplb_state() -> None:
    import torch  # noqa: PLC0415
    from vllm.distributed.eplb import eplb_state  # noqa: PLC0415

    state_cls = eplb_state.EplbState
    rearrange, allreduce_list = state_cls.rearrange, state_cls._allreduce_list

    def gimbal_rearrange(self, is_profile=False, rank_mapping=None, use_last_expert_load=False):
        # Only a rebalance from this rank's own window has per-source counts to gather.
        own_window = not (is_profile or rank_mapping is not None or use_last_expert_load)
        _state.gather = own_window
        if not own_window:
            _recorders.clear()
        try:
            return rearrange(self, is_profile=is_profile, rank_mapping=rank_mapping,
                             use_last_expert_load=use_last_expert_load)
        finally:
            _state.gather = False

    def gimbal_allreduce_list(self, tensor_list):
        if getattr(_state, "gather", False):
            group = eplb_state.get_ep_group().device_group
            ranks = group.size()
            for t in tensor_list:  # [layers, logical experts] per model, this rank's window
                parts = [torch.empty_like(t) for _ in range(ranks)]
                torch.distributed.all_gather(parts, t.contiguous(), group=group)
                layers, experts = t.shape
                # Loads the recorder refuses leave this model's rebalance source-blind, logged;
                # the error must not reach vLLM's rearrange (every rank sees the same loads, so
                # every rank takes the same way).
                try:
                    rec = SourceLoadRecorder(ranks, layers, experts, window=1)
                    rec.record_all(torch.stack(parts).cpu())
                    _recorders[(layers, experts)] = rec
                except Exception as err:  # noqa: BLE001
                    _recorders.pop((layers, experts), None)
                    _log.warning("gimbal_planner: per-source loads not kept (%s); this "
                                 "rebalance plans source-blind", err)
        return allreduce_list(self, tensor_list)

    state_cls.rearrange = gimbal_rearrange
    state_cls._allreduce_list = gimbal_allreduce_list
