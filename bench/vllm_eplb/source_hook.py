"""The per-source hook of gimbal_planner.vllm_plugin on vLLM 0.33's own EplbState code, on CPU.

Two processes form a gloo group standing in for the EP group (vLLM's ``get_ep_group`` is
replaced by one that returns it). Each "rank" holds a different window of logical-expert loads,
as vLLM's ``EplbState.rearrange`` computes them just before it all-reduces them. The hook runs
vLLM's ``EplbState._allreduce_list`` with the plugin's wrapping (``GIMBAL_EPLB_SOURCES=1``):
every rank must end with vLLM's sum (the all-reduce still happens), the same
``[layers, ranks, experts]`` recorder holding each rank's own row, and the same plan from the
installed policy. Prints one line; exit 1 on a mismatch. Not a GPU test: NCCL, CUDA graphs and
the real rearrange path are not exercised.
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

LAYERS, EXPERTS, RANKS, SLOTS = 2, 8, 2, 10


def window_of(rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randint(0, 50, (LAYERS, EXPERTS), generator=g, dtype=torch.int32)


def worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.update(GIMBAL_EPLB="1", GIMBAL_EPLB_SOURCES="1")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=RANKS)
    from vllm.distributed.eplb import eplb_state  # noqa: PLC0415
    from vllm.distributed.eplb.policy import EPLB_POLICIES  # noqa: PLC0415

    from gimbal_planner import vllm_plugin  # noqa: PLC0415

    class Group:
        device_group = dist.group.WORLD

    eplb_state.get_ep_group = lambda: Group()
    vllm_plugin.register()
    mine = window_of(rank)
    vllm_plugin._state.gather = True  # what the wrapped rearrange sets for its own window
    (summed,) = eplb_state.EplbState._allreduce_list(None, [mine.clone()])
    vllm_plugin._state.gather = False
    rec = vllm_plugin._recorders[(LAYERS, EXPERTS)]
    plan = EPLB_POLICIES["default"].rebalance_experts(summed, SLOTS, 1, 1, RANKS)
    torch.save({"summed": summed, "matrix": torch.from_numpy(rec.matrix()), "plan": plan},
               os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(os.path.join(tmp, "init"), tmp), nprocs=RANKS, join=True)
        got = [torch.load(os.path.join(tmp, f"{r}.pt")) for r in range(RANKS)]
    windows = torch.stack([window_of(r) for r in range(RANKS)])  # [ranks, layers, experts]
    expected = windows.permute(1, 0, 2).double()
    problems = []
    for r, g in enumerate(got):
        if not torch.equal(g["summed"], windows.sum(dim=0)):
            problems.append(f"rank {r}: all-reduced load is not the sum over ranks")
        if not torch.equal(g["matrix"], expected):
            problems.append(f"rank {r}: recorder does not hold each rank's own row")
        if not torch.equal(g["plan"], got[0]["plan"]):
            problems.append(f"rank {r}: plan differs from rank 0's")
    if problems:
        print("source hook: FAILED: " + "; ".join(problems))
        return 1
    print(f"source hook: {RANKS} gloo ranks; vLLM's all-reduce unchanged, recorder "
          f"[layers={LAYERS}, sources={RANKS}, experts={EXPERTS}] holds each rank's row, "
          f"identical plans on every rank")
    return 0


if __name__ == "__main__":
    sys.exit(main())
