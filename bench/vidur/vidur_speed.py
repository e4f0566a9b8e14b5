"""Times Vidur on a list of requests that Gimbal generated; prints one JSON line.

  python vidur_speed.py --requests REQUESTS_CSV --profile DIR --work DIR [--limit N]

REQUESTS_CSV is what `gimbal simulate --requests-csv` writes (arrival_s, prompt_tokens,
output_tokens per request); the first N requests of its first stack are replayed through Vidur's
trace-replay generator, so both simulators see the same arrivals and lengths. DIR holds the
tables from make_profile.py; Vidur's Hugging Face downloads are pointed at them (see there).
The engine settings mirror bench/vidur/gimbal-llama3-8b-h100.yaml; docs/results/vidur.md lists
what still differs.
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

import vidur.execution_time_predictor.sklearn_execution_time_predictor as skl  # noqa: E402
from vidur.config import (  # noqa: E402
    CacheConfig,
    ClusterConfig,
    MetricsConfig,
    RandomForrestExecutionTimePredictorConfig,
    ReplicaConfig,
    RoundRobinGlobalSchedulerConfig,
    SarathiSchedulerConfig,
    SimulationConfig,
    TraceRequestGeneratorConfig,
)
from vidur.simulator import Simulator  # noqa: E402

COMPUTE_DATASET = "local/roofline-meta-llama-llama-3-8b-h100"
NETWORK_DATASET = "local/roofline-h100-dgx"
MAX_TOKENS = 4096  # Vidur's Llama-3-8B context (max_model_len); the workload is clipped to it
MAX_BATCHED_TOKENS = 8192  # Gimbal's (vLLM's) max_num_batched_tokens on an 80 GB H100
MAX_SEQS = 256  # Vidur's decode tables stop here; the run never gets near it (at most ~25)


def point_downloads_at(profile_dir):
    """Serves the profiling datasets from disk and makes every other download fail, so Vidur
    skips its published predictions and fits its models to the local tables."""

    def snapshot_download(repo_id, **_):
        local = {COMPUTE_DATASET: "compute", NETWORK_DATASET: "network"}.get(repo_id)
        if local is None:
            raise FileNotFoundError(f"{repo_id}: offline, no local copy")
        return str(Path(profile_dir) / local)

    skl.snapshot_download = snapshot_download


def write_trace(requests_csv, limit, out_csv):
    df = pd.read_csv(requests_csv)
    df = df[df["stack"] == df["stack"].iloc[0]].sort_values("id").head(limit)
    if (df["prompt_tokens"] + df["output_tokens"] > MAX_TOKENS).any():
        raise SystemExit(f"a request exceeds Vidur's {MAX_TOKENS}-token context; clip the workload")
    pd.DataFrame({
        "Date": "gimbal",
        "Time": df["arrival_s"],
        "PromptTokenCount": df["prompt_tokens"],
        "CompletionTokenCount": df["output_tokens"],
    }).to_csv(out_csv, index=False)
    return len(df)


def make_config(trace_csv, work, replicas, native):
    # Vidur's default predictor (random forest) with a one-point search grid and 2-fold CV, so
    # fitting takes seconds on two cores; its linear-regression predictor cannot be built in
    # 0.0.26 (an abstract method is left unimplemented). Only setup time depends on this: the
    # run reads a precomputed table of predictions either way.
    predictor = RandomForrestExecutionTimePredictorConfig(
        num_estimators=[50],
        max_depth=[16],
        min_samples_split=[2],
        k_fold_cv_splits=2,
        model_profiling_dataset=COMPUTE_DATASET,
        network_profiling_dataset=NETWORK_DATASET,
        prediction_max_prefill_chunk_size=MAX_BATCHED_TOKENS,
        prediction_max_batch_size=MAX_SEQS,
        prediction_max_tokens_per_request=MAX_BATCHED_TOKENS,
        cache_dir=str(Path(work) / "cache"),
        num_training_job_threads=1,
        use_native_execution_time_predictor=native,
    )
    cluster = ClusterConfig(
        num_replicas=replicas,
        replica_config=ReplicaConfig(
            model_name="meta-llama/Llama-3-8B",
            gpu_memory_utilization=0.92,
            num_pipeline_stages=1,
            tensor_parallel_size=1,
            device="h100",
            network_device="h100_dgx",
        ),
        # KV capacity: Vidur keeps 1 - memory_margin_fraction of the GPU's memory (its
        # gpu_memory_utilization is not read by its memory planner); Gimbal's engine uses 0.92.
        cache_config=CacheConfig(block_size=16, memory_margin_fraction=0.08),
        global_scheduler_config=RoundRobinGlobalSchedulerConfig(),
        replica_scheduler_config=SarathiSchedulerConfig(
            batch_size_cap=MAX_SEQS, chunk_size=MAX_BATCHED_TOKENS
        ),
    )
    generator = TraceRequestGeneratorConfig(
        trace_file=str(trace_csv),
        date="gimbal",
        prefill_scale_factor=1,
        decode_scale_factor=1,
        time_scale_factor=1,
        max_tokens=MAX_TOKENS,
    )
    metrics = MetricsConfig(
        write_metrics=False,
        write_json_trace=False,
        enable_chrome_trace=False,
        save_table_to_wandb=False,
        store_plots=False,
        output_dir=str(Path(work) / "output"),
    )
    return SimulationConfig(
        seed=1,
        log_level="warning",
        cluster_config=cluster,
        request_generator_config=generator,
        execution_time_predictor_config=predictor,
        metrics_config=metrics,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--limit", type=int, default=1 << 30)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--native", action="store_true",
                    help="use Vidur's C++ execution-time predictor (default: its Python one)")
    a = ap.parse_args()

    Path(a.work).mkdir(parents=True, exist_ok=True)
    point_downloads_at(a.profile)
    trace = Path(a.work) / "trace.csv"
    n = write_trace(a.requests, a.limit, trace)

    t0 = time.perf_counter()
    sim = Simulator(make_config(trace, a.work, a.replicas, a.native))
    setup_s = time.perf_counter() - t0
    batches, busy_s = 0, 0.0
    for replica_scheduler in sim.scheduler._replica_schedulers.values():
        stage = replica_scheduler.get_replica_stage_scheduler(0)
        original = stage.on_schedule

        def counted(*args, _f=original, **kw):
            nonlocal batches, busy_s
            out = _f(*args, **kw)
            if out[0] is not None:
                batches += 1
                busy_s += out[2].total_time
            return out

        stage.on_schedule = counted
    t1 = time.perf_counter()
    sim.run()
    wall_s = time.perf_counter() - t1
    print(json.dumps({
        "simulator": "vidur", "requests": n, "replicas": a.replicas, "native": a.native,
        "setup_s": round(setup_s, 3), "wall_s": round(wall_s, 3),
        "sim_s": round(float(sim._time), 3), "batches": batches,
        "mean_batch_ms": round(1e3 * busy_s / max(batches, 1), 3),
    }))


if __name__ == "__main__":
    main()
