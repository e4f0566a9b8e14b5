"""Gimbal's source-aware expert placement planner for vLLM's EPLB (docs/vllm-integration.md).

* :class:`GimbalEplbPolicy` - the planner behind vLLM 0.33's ``rebalance_experts`` call.
* :class:`SourceLoadRecorder` - per-source-rank expert loads, which vLLM sums before planning.
* :class:`Planner` - the planner's C API itself (``plan``, ``route``, ``quality``).
* :func:`logical_maps`, :func:`check_plan` - vLLM's derived maps and the invariants of a plan.
"""

from ._planner import Planner
from .eplb_policy import GimbalEplbPolicy, make_policy
from .maps import check_plan, logical_maps, max_over_mean, rank_loads
from .recorder import SourceLoadRecorder

__all__ = [
    "GimbalEplbPolicy",
    "Planner",
    "SourceLoadRecorder",
    "check_plan",
    "logical_maps",
    "make_policy",
    "max_over_mean",
    "rank_loads",
]
