#!/usr/bin/env python3
"""Drive vLLM's own v1 scheduler over a trace, with no GPU and no model weights.

Builds vllm.v1.core.sched.scheduler.Scheduler (or AsyncScheduler) from a VllmConfig whose model
config is a tiny local config.json written by this script (no download, no tokenizer) and a
KVCacheConfig made up here (one full-attention group, `num_blocks` blocks of `block_size` tokens,
prefix caching as the trace says). Each step it adds the requests that arrive at that step, calls
schedule(), fakes the model runner (one sampled token for every request whose scheduled tokens
reach the end of its sequence), calls update_from_output(), and writes one JSON line describing
the step. The line format is documented in README.md ("Step log"); Gimbal's engine scheduler is
meant to emit the same lines so the two can be compared with compare_steps.py.

Usage: drive_vllm.py TRACE.json [-o STEPS.jsonl] [--async-scheduling] [--max-steps N]
       drive_vllm.py --batch JOBS   (one job a line: TRACE OUT [async]; pays vLLM's start-up once)
Run it with the venv made by install.sh (build/vllm-diff-venv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

# vLLM must resolve a platform before its config classes validate. With no GPU the CUDA platform
# is not found; the CPU platform is the only one that resolves on a bare machine. The scheduler
# itself does not depend on it (see README.md, "Platform").
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

FORMAT = "gimbal-vllm-diff-steps/1"
TRACE_FORMAT = "gimbal-vllm-diff-trace/1"

ENGINE_DEFAULTS = {
    "block_size": 16,
    "num_blocks": 1024,  # includes vLLM's one reserved null block
    "max_num_seqs": 256,
    "max_num_batched_tokens": 8192,
    "max_model_len": 32768,
    "enable_prefix_caching": True,
    "scheduler_reserve_full_isl": True,
    "long_prefill_token_threshold": 0,
    "watermark": 0.0,
    "policy": "fcfs",
    "async_scheduling": False,
    "cache_aware_admission_window": 0,  # vLLM 0.34's cache-aware admission (0.33 has none)
    "cache_aware_admission_threshold": 0.5,
}

# A tiny decoder-only model: vLLM only reads its shape to validate the config.
MODEL_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-5,
    "torch_dtype": "float16",
}


def fail(msg: str) -> None:
    print(f"drive_vllm: {msg}", file=sys.stderr)
    sys.exit(2)


def load_trace(path: str) -> dict:
    try:
        with open(path) as f:
            trace = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"cannot read trace {path}: {e}")
    if trace.get("format") != TRACE_FORMAT:
        fail(f"{path}: format must be '{TRACE_FORMAT}', got {trace.get('format')!r}")
    engine = dict(ENGINE_DEFAULTS)
    unknown = set(trace.get("engine", {})) - set(ENGINE_DEFAULTS)
    if unknown:
        fail(f"{path}: unknown engine keys {sorted(unknown)}")
    engine.update(trace.get("engine", {}))
    trace["engine"] = engine
    seen = set()
    for i, r in enumerate(trace.get("requests", [])):
        for key in ("id", "arrival_step", "prompt", "output_tokens"):
            if key not in r:
                fail(f"{path}: request #{i} lacks '{key}'")
        if r["id"] in seen:
            fail(f"{path}: duplicate request id {r['id']!r}")
        seen.add(r["id"])
        if not r["prompt"] or r["output_tokens"] < 1 or r["arrival_step"] < 0:
            fail(f"{path}: request {r['id']!r} needs a non-empty prompt, output_tokens >= 1 "
                 "and arrival_step >= 0")
        if len(r["prompt"]) + r["output_tokens"] > engine["max_model_len"]:
            fail(f"{path}: request {r['id']!r} is longer than max_model_len")
    return trace


def build_scheduler(engine: dict, workdir: str):
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import (FullAttentionSpec, KVCacheConfig,
                                            KVCacheGroupSpec)
    from vllm.v1.structured_output import StructuredOutputManager

    model_dir = os.path.join(workdir, "model")
    os.makedirs(model_dir, exist_ok=True)
    cfg = dict(MODEL_CONFIG, max_position_embeddings=engine["max_model_len"])
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f)

    model_config = ModelConfig(model=model_dir, skip_tokenizer_init=True,
                               max_model_len=engine["max_model_len"], dtype="float16")
    scheduler_config = SchedulerConfig(
        max_num_seqs=engine["max_num_seqs"],
        max_num_batched_tokens=engine["max_num_batched_tokens"],
        max_model_len=engine["max_model_len"],
        is_encoder_decoder=False,
        enable_chunked_prefill=True,
        long_prefill_token_threshold=engine["long_prefill_token_threshold"],
        scheduler_reserve_full_isl=engine["scheduler_reserve_full_isl"],
        watermark=engine["watermark"],
        policy=engine["policy"],
        # Only named when on, so that vLLM 0.33 (which has no such option) still runs the rest.
        **({"cache_aware_admission_window": engine["cache_aware_admission_window"],
            "cache_aware_admission_threshold": engine["cache_aware_admission_threshold"]}
           if engine["cache_aware_admission_window"] else {}),
    )
    cache_config = CacheConfig(block_size=engine["block_size"],
                               enable_prefix_caching=engine["enable_prefix_caching"])
    # vLLM 0.34's CPU platform refuses x86 without an active Triton driver (vllm.triton_utils
    # reports none on a machine with no GPU); nothing here compiles a kernel, so the driver tells
    # the check Triton is there (README.md, "Platform").
    import vllm.triton_utils
    vllm.triton_utils.HAS_TRITON = True
    vllm_config = VllmConfig(model_config=model_config, scheduler_config=scheduler_config,
                             cache_config=cache_config)
    # The platform's config hooks may rewrite these; the trace's values win (README, "Platform").
    vllm_config.cache_config.block_size = engine["block_size"]
    vllm_config.cache_config.enable_prefix_caching = engine["enable_prefix_caching"]
    vllm_config.cache_config.num_gpu_blocks = engine["num_blocks"]
    vllm_config.scheduler_config.async_scheduling = engine["async_scheduling"]

    kv_cache_config = KVCacheConfig(
        num_blocks=engine["num_blocks"],
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(
            ["model.layers.0.self_attn.attn"],
            FullAttentionSpec(block_size=engine["block_size"], num_kv_heads=1, head_size=8,
                              dtype=torch.float16))],
    )
    cls = AsyncScheduler if engine["async_scheduling"] else Scheduler
    scheduler = cls(vllm_config=vllm_config, kv_cache_config=kv_cache_config,
                    structured_output_manager=StructuredOutputManager(vllm_config),
                    block_size=engine["block_size"], log_stats=True)
    hash_fn = get_hash_fn_by_name(vllm_config.cache_config.prefix_caching_hash_algo)
    init_none_hash(hash_fn)
    hasher = get_request_block_hasher(engine["block_size"], hash_fn)
    return scheduler, hasher


def make_request(r: dict, hasher, arrival: float):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request
    params = SamplingParams(max_tokens=r["output_tokens"], ignore_eos=True, temperature=0.0)
    return Request(request_id=str(r["id"]), prompt_token_ids=list(r["prompt"]),
                   sampling_params=params, pooling_params=None, arrival_time=arrival,
                   priority=r.get("priority", 0), block_hasher=hasher)


def sampled_token(req_id: str, index: int) -> int:
    # Deterministic, inside the vocabulary, and unlikely to repeat a prompt block by chance.
    return 1000 + (index * 7919 + sum(map(ord, req_id)) * 104729) % 30000


def run(trace: dict, out, async_scheduling: bool | None, max_steps: int) -> int:
    engine = trace["engine"]
    if async_scheduling is not None:
        engine["async_scheduling"] = async_scheduling
    with tempfile.TemporaryDirectory(prefix="vllm-diff-") as workdir:
        scheduler, hasher = build_scheduler(engine, workdir)
        return drive(trace, engine, scheduler, hasher, out, max_steps)


def drive(trace, engine, scheduler, hasher, out, max_steps) -> int:
    out.write(json.dumps({"format": FORMAT, "engine": engine, "source": "vllm",
                          "vllm_version": vllm_version()}) + "\n")

    # Same-step arrivals are added in trace order (vLLM's FCFS order is the order of add_request).
    pending = sorted(trace.get("requests", []), key=lambda r: r["arrival_step"])
    next_req = 0
    generated: dict[str, int] = {}
    admitted_before: set[str] = set()
    step = 0
    in_flight = None  # async scheduling: the output scheduled one step earlier
    while next_req < len(pending) or scheduler.has_requests() or in_flight is not None:
        if step >= max_steps:
            fail(f"stopped after {max_steps} steps with work left (raise --max-steps)")
        arrived = []
        while next_req < len(pending) and pending[next_req]["arrival_step"] <= step:
            r = pending[next_req]
            # Arrival times grow in trace order inside a step, as wall-clock arrivals would: the
            # priority policy breaks priority ties by arrival time (then by request id).
            arrival = step + 1e-6 * len(arrived)
            scheduler.add_request(make_request(r, hasher, arrival))
            arrived.append(str(r["id"]))
            next_req += 1
        so = scheduler.schedule()
        line = describe(step, so, scheduler, admitted_before, arrived)
        mro = fake_model_output(so, scheduler, generated)
        line["finished"] = []
        if engine["async_scheduling"]:
            # One batch in flight: the previous step's output lands after this step is planned.
            if in_flight is not None:
                line["finished"] = finished_ids(scheduler.update_from_output(*in_flight))
            in_flight = (so, mro) if so.total_num_scheduled_tokens > 0 else None
        else:
            line["finished"] = finished_ids(scheduler.update_from_output(so, mro))
        running, waiting = scheduler.get_request_counts()
        line["running_after"] = running
        line["waiting_after"] = waiting
        line["kv_usage_after"] = round(scheduler.get_kv_cache_usage(), 6)
        line["kv_free_blocks_after"] = scheduler.kv_cache_manager.block_pool.get_num_free_blocks()
        out.write(json.dumps(line) + "\n")
        step += 1
    return step


def describe(step, so, scheduler, admitted_before, arrived) -> dict:
    new_ids = {d.req_id for d in so.scheduled_new_reqs}
    # vLLM 0.33 lists resumed (once preempted) requests apart; 0.34 drops their worker state at
    # preemption and sends them again as new ones. `admitted_before` tells the two apart either way.
    resumed_ids = set(getattr(so.scheduled_cached_reqs, "resumed_req_ids", ()))
    seqs = []
    for req_id, n in so.num_scheduled_tokens.items():
        req = scheduler.requests[req_id]
        before = req.num_computed_tokens - n  # the scheduler advanced it already
        entry = {"id": req_id, "tokens": n, "computed_before": before,
                 "prompt_tokens": req.num_prompt_tokens,
                 "generated_before": req.num_output_tokens}
        if req_id in new_ids or req_id in resumed_ids:
            entry["admitted"] = "resumed" if req_id in admitted_before else "new"
            entry["prefix_hit_tokens"] = before
            admitted_before.add(req_id)
        seqs.append(entry)
    return {
        "step": step,
        "arrived": arrived,
        "scheduled": seqs,
        "total_tokens": so.total_num_scheduled_tokens,
        "preempted": sorted(so.preempted_req_ids),
    }


def fake_model_output(so, scheduler, generated: dict):
    from vllm.v1.outputs import ModelRunnerOutput
    req_ids = list(so.num_scheduled_tokens)
    sampled = []
    for req_id in req_ids:
        req = scheduler.requests[req_id]
        if req.is_prefill_chunk:
            sampled.append([])  # a chunk that does not reach the end samples nothing
        else:
            k = generated.get(req_id, 0)
            generated[req_id] = k + 1
            sampled.append([sampled_token(req_id, k)])
    import dataclasses
    extra = {}
    if "req_id_to_index" in {f.name for f in dataclasses.fields(ModelRunnerOutput)}:
        extra["req_id_to_index"] = {r: i for i, r in enumerate(req_ids)}  # 0.33; 0.34 dropped it
    return ModelRunnerOutput(req_ids=req_ids, sampled_token_ids=sampled, **extra)


def finished_ids(outputs) -> list[str]:
    done = []
    for eco in outputs.values():
        for o in eco.outputs:
            if o.finish_reason is not None:
                done.append(o.request_id)
    return sorted(done)


def vllm_version() -> str:
    import vllm
    return getattr(vllm, "__version__", "unknown")


def run_batch(path: str, max_steps: int) -> None:
    try:
        with open(path) as f:
            jobs = [line.split() for line in f if line.strip()]
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    for job in jobs:
        if len(job) not in (2, 3) or (len(job) == 3 and job[2] != "async"):
            fail(f"{path}: bad job {' '.join(job)!r} (want: TRACE OUT [async])")
        trace = load_trace(job[0])
        with open(job[1], "w") as out:
            steps = run(trace, out, len(job) == 3, max_steps)
        print(f"drive_vllm: {job[1]}: {steps} steps", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace", nargs="?")
    ap.add_argument("--batch", help="file of jobs, one a line: TRACE OUT [async]")
    ap.add_argument("-o", "--output", default="-", help="step log (JSON lines); '-' = stdout")
    ap.add_argument("--async-scheduling", dest="async_scheduling", action="store_true",
                    default=None, help="use AsyncScheduler with one batch in flight")
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.batch:
        run_batch(args.batch, args.max_steps)
        return
    if not args.trace:
        fail("give a trace or --batch JOBS")
    trace = load_trace(args.trace)
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    try:
        steps = run(trace, out, args.async_scheduling, args.max_steps)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"drive_vllm: {steps} steps", file=sys.stderr)


if __name__ == "__main__":
    main()
