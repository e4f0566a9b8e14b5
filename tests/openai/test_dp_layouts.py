"""`gimbal serve` in front of the API servers of one DP+EP group, laid out as vLLM 0.33 lays them
out (docs/router.md), played by `gimbal engine`. Started by run.sh.

- External load balancing, an API server per rank (`vllm serve ... --data-parallel-rank k`):
  `gimbal engine --dp 4`, rank k on its own port; the router has one backend per rank port
  (dp0..dp3), reads /metrics and dispatches round robin.
- Hybrid load balancing, an API server per node over its local ranks
  (`--data-parallel-hybrid-lb --data-parallel-size-local 2`): `gimbal engine --dp 4
  --ranks-per-port 2`; the router has one backend per node (node0, node1), state source auto.
"""

import os
import time

import openai
import pytest

from conftest import get, get_json, metric_sum, metrics, wait_healthy

# The series the router reads from a vLLM /metrics page (docs/router.md), all labelled `engine`.
ROUTER_READS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:cache_config_info",
    "gimbal:prefill_pending_tokens",
}


def test_each_rank_port_exposes_only_its_own_series(rank_urls, model):
    for k, url in enumerate(rank_urls):
        samples = metrics(url)
        names = {n for n, _, _ in samples}
        assert ROUTER_READS <= names, f"rank {k} lacks {ROUTER_READS - names}"
        engines = {labels.get("engine") for _, labels, _ in samples}
        # As a vLLM API server started with --data-parallel-rank k: engine="k" and nothing else.
        assert engines == {str(k)}, f"rank {k}'s page has engine labels {engines}"
        assert {labels["model_name"] for _, labels, _ in samples if "model_name" in labels} \
            == {model}


def test_requests_reach_the_rank_the_router_names(client, rank_urls, model):
    reached = []
    for _ in range(2 * len(rank_urls)):
        before = [metric_sum(u, "vllm:request_success_total") for u in rank_urls]
        raw = client.completions.with_raw_response.create(model=model, prompt="hello", max_tokens=2)
        name = raw.headers["x-gimbal-engine"]
        assert name.startswith("dp")
        k = int(name[2:])
        # The answer comes from rank k (the engine writes its rank into the id) ...
        assert raw.parse().id.startswith(f"cmpl-{k}-")
        # ... and only rank k's page counted it.
        after = [metric_sum(u, "vllm:request_success_total") for u in rank_urls]
        assert [a - b for a, b in zip(after, before)] == [1 if i == k else 0
                                                           for i in range(len(rank_urls))]
        reached.append(k)
    assert sorted(set(reached)) == list(range(len(rank_urls)))  # round robin reaches every rank


def scraped_engines(router_url, admin_token):
    """The router's /admin/engines once every engine has a snapshot (bounded wait)."""
    deadline = time.monotonic() + 10
    while True:
        engines = get_json(router_url + "/admin/engines", admin_token)["engines"]
        if all(e["snapshot"] for e in engines) or time.monotonic() > deadline:
            return engines
        time.sleep(0.05)


def kv_capacity(samples):
    """KV tokens per engine label, from vllm:cache_config_info (num_gpu_blocks x block_size)."""
    return {labels["engine"]: float(labels["num_gpu_blocks"]) * float(labels["block_size"])
            for n, labels, _ in samples if n == "vllm:cache_config_info"}


def test_the_router_sees_each_rank_as_one_engine(router_url, rank_urls, admin_token):
    engines = scraped_engines(router_url, admin_token)
    assert [e["name"] for e in engines] == [f"dp{k}" for k in range(len(rank_urls))]
    assert [e["url"] for e in engines] == rank_urls
    for k, url in enumerate(rank_urls):
        assert engines[k]["snapshot"]["kv_capacity_tokens"] == kv_capacity(metrics(url))[str(k)]


def test_the_ranks_share_one_ep_group(rank_urls):
    # One placement for the whole group, whichever rank's port is asked.
    placements = {get(u + "/gimbal/placement")[1] for u in rank_urls}
    assert len(placements) == 1


# --- hybrid: one port per node of 2 ranks ------------------------------------------------------

@pytest.fixture(scope="module")
def hybrid():
    url = os.environ["GIMBAL_OPENAI_HYBRID_ROUTER"]
    wait_healthy(url)
    return url, os.environ["GIMBAL_OPENAI_NODES"].split()


def node_ranks(j):
    return {2 * j, 2 * j + 1}


def test_each_node_port_exposes_only_its_ranks(hybrid):
    _, nodes = hybrid
    for j, url in enumerate(nodes):
        samples = metrics(url)
        assert {labels.get("engine") for _, labels, _ in samples} == {str(r) for r in node_ranks(j)}
        running = [labels["engine"] for n, labels, _ in samples if n == "vllm:num_requests_running"]
        assert sorted(running) == sorted(str(r) for r in node_ranks(j))
        # No per-engine pushed state from a server of several engines: a router reads /metrics.
        assert get(url + "/gimbal/state")[0] == 404


def test_requests_reach_a_rank_of_the_node_the_router_names(hybrid, model):
    router, nodes = hybrid
    client = openai.OpenAI(base_url=router + "/v1", api_key="unused", max_retries=0, timeout=30)
    reached = set()
    for _ in range(8):
        before = [metric_sum(u, "vllm:request_success_total") for u in nodes]
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        name = raw.headers["x-gimbal-engine"]
        assert name in ("node0", "node1")
        j = int(name[4:])
        rank = int(raw.parse().id.split("-")[1])  # chatcmpl-<rank>-<n>
        assert rank in node_ranks(j)
        after = [metric_sum(u, "vllm:request_success_total") for u in nodes]
        assert [a - b for a, b in zip(after, before)] == [1 if i == j else 0 for i in range(2)]
        reached.add(rank)
    # Each node's server balances over its own ranks: both ranks of a node that got requests.
    assert any(node_ranks(j) <= reached for j in range(2))


def test_the_router_reads_a_node_as_the_sum_of_its_ranks(hybrid, admin_token):
    router, nodes = hybrid
    engines = scraped_engines(router, admin_token)
    assert [e["name"] for e in engines] == ["node0", "node1"]
    for j, url in enumerate(nodes):
        per_rank = kv_capacity(metrics(url))
        assert sorted(per_rank) == sorted(str(r) for r in node_ranks(j))
        assert engines[j]["snapshot"]["kv_capacity_tokens"] == sum(per_rank.values())
        assert engines[j]["snapshot"]["pushed"] is False  # the state stream is 404: /metrics
