"""Writes stand-in profiling tables for Vidur: Llama-3-8B on one H100, from a roofline.

Vidur 0.0.26 fetches its measured per-operation timings from Hugging Face Hub datasets at run
time; that hub is out of reach here, so this script writes tables with the same columns, filled
from a roofline built on Gimbal's own H100 and calibration numbers (data/gpus/h100-sxm.yaml,
data/topologies/hgx-8gpu.yaml). Vidur fits its regression models to these tables exactly as it
would to measured ones. The simulated latencies are therefore only as good as this roofline; the
benchmark uses them to measure simulator speed, not fidelity.

  python make_profile.py OUT_DIR   # writes OUT_DIR/{compute,network}/...
"""

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]

# Llama-3-8B (Vidur's meta-llama/Llama-3-8B model config; bench/vidur/llama-3-8b-dense.yaml).
HIDDEN, FFN, Q_HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 8, 128256
HEAD_DIM = HIDDEN // Q_HEADS
QKV_WIDTH = (Q_HEADS + 2 * KV_HEADS) * HEAD_DIM
BLOCK_SIZE = 16
BYTES = 2  # bf16
LAUNCH_S = 4e-6  # one kernel launch, the floor of every operation

MAX_TOKENS = 8192  # largest step (tokens) and context the tables cover


def _load(kind, name):
    with open(REPO / "data" / kind / f"{name}.yaml") as f:
        return yaml.safe_load(f)


GPU = _load("gpus", "h100-sxm")
TOPO = _load("topologies", "hgx-8gpu")
PEAK = GPU["peak_bf16_tflops"] * 1e12
HBM = GPU["hbm_tb_per_s"] * 1e12 * TOPO["hbm_efficiency"]
NVLINK = GPU["nvlink_gb_per_s"] * 1e9 * TOPO["link_efficiency"]


def roofline_ms(flops, bytes_moved, mfu):
    return 1e3 * (max(flops / (PEAK * mfu), bytes_moved / HBM) + LAUNCH_S)


def gemm_ms(tokens, k, n):
    flops = 2.0 * tokens * k * n
    moved = BYTES * (k * n + tokens * (k + n))
    return roofline_ms(flops, moved, TOPO["mfu_dense"])


def elementwise_ms(tokens, width, passes):
    return roofline_ms(0.0, BYTES * tokens * width * passes, 1.0)


def mlp_rows():
    rows = []
    for t in sorted({*range(1, 129), *range(128, MAX_TOKENS + 1, 64)}):
        rows.append({
            "n_head": Q_HEADS, "n_kv_head": KV_HEADS, "n_embd": HIDDEN,
            "n_expanded_embd": FFN, "use_gated_mlp": True, "vocab_size": VOCAB,
            "num_tensor_parallel_workers": 1, "num_tokens": t,
            "time_stats.attn_pre_proj.median": gemm_ms(t, HIDDEN, QKV_WIDTH),
            "time_stats.attn_post_proj.median": gemm_ms(t, Q_HEADS * HEAD_DIM, HIDDEN),
            "time_stats.mlp_up_proj.median": gemm_ms(t, HIDDEN, 2 * FFN),
            "time_stats.mlp_down_proj.median": gemm_ms(t, FFN, HIDDEN),
            "time_stats.mlp_act.median": elementwise_ms(t, FFN, 3),
            "time_stats.input_layernorm.median": elementwise_ms(t, HIDDEN, 2),
            "time_stats.post_attention_layernorm.median": elementwise_ms(t, HIDDEN, 2),
            "time_stats.attn_rope.median": elementwise_ms(t, (Q_HEADS + KV_HEADS) * HEAD_DIM, 2),
            "time_stats.add.median": elementwise_ms(t, HIDDEN, 3),
        })
    return rows


def attention_rows():
    kv_row = 2 * KV_HEADS * HEAD_DIM * BYTES  # K and V of one token in one layer
    mfu = TOPO["mfu_attention"]
    rows = []

    def row(batch, chunk, kv, prefill_ms, decode_ms):
        tokens = max(chunk, batch)
        rows.append({
            "n_embd": HIDDEN, "n_q_head": Q_HEADS, "n_kv_head": KV_HEADS,
            "block_size": BLOCK_SIZE, "num_tensor_parallel_workers": 1,
            "batch_size": batch, "prefill_chunk_size": chunk, "kv_cache_size": kv,
            "time_stats.attn_prefill.median": prefill_ms,
            "time_stats.attn_decode.median": decode_ms,
            "time_stats.attn_kv_cache_save.median": elementwise_ms(tokens, kv_row // BYTES, 2),
        })

    for chunk in range(32, MAX_TOKENS + 1, 256):
        for kv in range(0, MAX_TOKENS - chunk + 1, 512):
            flops = 4.0 * chunk * (kv + chunk / 2) * Q_HEADS * HEAD_DIM  # causal
            ms = roofline_ms(flops, (kv + chunk) * kv_row, mfu)
            row(1, chunk, kv, ms, 0.0)
    for batch in [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256]:
        for kv in range(256, MAX_TOKENS + 1, 512):
            flops = 4.0 * batch * kv * Q_HEADS * HEAD_DIM
            ms = roofline_ms(flops, batch * kv * kv_row, mfu)
            row(batch, 0, kv, 0.0, ms)
    return rows


def network_rows(collective):
    rows = []
    for devices in (1, 2, 8):
        for workers in (1, 2, 4, 8):
            for tokens in (1, 8, 64, 512, 2048, MAX_TOKENS):
                size = tokens * HIDDEN * BYTES
                ms = 1e3 * (2 * size / NVLINK + TOPO["nvlink_latency_us"] * 1e-6)
                rows.append({
                    "collective": collective, "num_workers": workers,
                    "devices_per_node": devices, "size": size,
                    f"time_stats.{collective}.median": ms,
                })
    return rows


def main(out):
    compute, network = Path(out) / "compute", Path(out) / "network"
    compute.mkdir(parents=True, exist_ok=True)
    network.mkdir(parents=True, exist_ok=True)
    (compute / "config.json").write_text(
        json.dumps({"model": "meta-llama/Llama-3-8B", "device_sku": "h100"}))
    (network / "config.json").write_text(json.dumps({"sku": "h100_dgx"}))
    pd.DataFrame(mlp_rows()).to_csv(compute / "mlp.csv.xz", index=False)
    pd.DataFrame(attention_rows()).to_csv(compute / "attention.csv.xz", index=False)
    pd.DataFrame(network_rows("all_reduce")).to_csv(network / "all_reduce.csv.xz", index=False)
    pd.DataFrame(network_rows("send_recv")).to_csv(network / "send_recv.csv.xz", index=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_profile.py OUT_DIR")
    main(sys.argv[1])
