#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/ (docs/fuzzing.md).

Small valid inputs taken from configs/ and examples/, and the hostile inputs of issue 10, named
seed-*; reproducers of crashes the targets found, named crash-* (those written here, and ones
copied from libFuzzer's artifacts); libFuzzer's merged finds (hash names) are not touched. Run from
anywhere: python3 fuzz/make_seeds.py. Deterministic: the same files every time.
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def head(rel, lines):
    return b"".join(read(rel).splitlines(keepends=True)[:lines])


def write(target, name, data, prefix="seed-"):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, prefix + name), "wb") as f:
        f.write(data)


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out


BODY = b'{"model":"m","prompt":"hello world","max_tokens":8,"stream":false}'
CHAT = (b'{"model":"Qwen/Qwen3-30B-A3B","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,'
        b'"max_completion_tokens":16,"user":"alice","priority":3}')


def http_request():
    t = "http_request"
    post = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    write(t, "get", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    write(t, "head", "HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    write(t, "head-with-length", "HEAD /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde")
    write(t, "post", post + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    write(t, "chat-keepalive-pipelined",
          b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(CHAT)
          + CHAT + b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    write(t, "chunked", post + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY) + b"0\r\n\r\n")
    write(t, "chunked-trailer-64k",
          post + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY, 64)
          + b"0\r\nX: " + b"a" * 65536 + b"\r\n\r\n")
    write(t, "chunked-many-trailers",
          post + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY, 64) + b"0\r\n"
          + b"".join(b"X-T%d: v\r\n" % i for i in range(3000)) + b"\r\n")
    write(t, "te-gzip-chunked",
          post + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(BODY) + b"0\r\n\r\n")
    write(t, "te-two-fields",
          post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
          + chunked(BODY) + b"0\r\n\r\n")
    write(t, "te-and-length",
          post + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(BODY) + b"0\r\n\r\n")
    write(t, "two-lengths", post + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef")
    write(t, "chunk-ext-and-bad-size",
          post + b"Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nabcde\r\nffffffffffffffffff\r\nx\r\n")
    write(t, "header-64k", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 65600 + b"\r\n\r\n")
    write(t, "http10", "GET /health HTTP/1.0\r\n\r\n")
    write(t, "expect-continue", post + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}")
    write(t, "obs-fold-and-lf-only", "GET / HTTP/1.1\nHost: x\n folded\n\n")
    write(t, "body-over-small-limit", post + b"Content-Length: 70000\r\n\r\n" + b"x" * 70000)
    write(t, "upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    write(t, "truncated", post + b"Content-Length: 100\r\n\r\n{\"prompt\":")
    write(t, "garbage", b"\x00\xff\r\n\r\n" + bytes(range(256)))


def http_response():
    t = "http_response"
    json_body = b'{"id":"cmpl-1","choices":[{"text":"hi"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(json_body) + json_body
    sse = b'data: {"choices":[{"text":"a"}]}\n\ndata: [DONE]\n\n'
    write(t, "ok", ok)
    write(t, "continue-then-ok", b"HTTP/1.1 100 Continue\r\n\r\n" + ok)
    write(t, "early-hints-then-ok", b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok)
    write(t, "too-many-interim", b"HTTP/1.1 100 Continue\r\n\r\n" * 9 + ok)
    write(t, "switching-protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    write(t, "sse-chunked", b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
          + chunked(sse, 16) + b"0\r\n\r\n")
    write(t, "chunked-trailer-64k", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          + chunked(json_body, 64) + b"0\r\nX: " + b"a" * 65536 + b"\r\n\r\n")
    write(t, "te-gzip-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
          + chunked(json_body) + b"0\r\n\r\n")
    write(t, "body-to-eof", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + json_body)
    write(t, "no-content", "HTTP/1.1 204 No Content\r\n\r\n")
    write(t, "not-modified-with-length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
    write(t, "error-503", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy")
    write(t, "http10-keepalive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}")
    write(t, "extra-bytes-after", ok + b"HTTP/1.1 200 OK\r\n")
    write(t, "status-999-and-bad", "HTTP/1.1 999 What\r\nContent-Length: 0\r\n\r\nHTTP/1.1 0 x\r\n\r\n")
    write(t, "truncated", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")


def completion_body():
    t = "completion_body"
    write(t, "completion", BODY)
    write(t, "chat", CHAT)
    write(t, "token-ids", '{"prompt":[[1,2,3],[4,5]],"max_tokens":2}')
    write(t, "prompt-list", '{"prompt":["ab","cde"],"model":"m","logit_bias":{"1":2},"extra":{"model":7}}')
    write(t, "duplicates-and-nulls", '{"prompt":"abcdef","prompt":"ab","model":"a","model":"b","stream":null,"priority":null}')
    write(t, "usage-response", '{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}')
    write(t, "usage-null", '{"usage":null,"choices":[{"delta":{"content":"\\"usage\\""}}]}')
    write(t, "escapes", '{"prompt":"\\u00e9\\ud83d\\ude00\\n","user":"\\u0000"}')
    write(t, "big-numbers", '{"prompt":"x","max_tokens":1e308,"priority":-9223372036854775809}')
    write(t, "not-object", '[{"prompt":"x"}]')
    # 100000 nested '[' in a field (about 200 KB).
    write(t, "deep-nesting", '{"prompt":"x","extra":' + "[" * 100000 + "]" * 100000 + "}")
    write(t, "depth-128", '{"prompt":"x","extra":' + "[" * 127 + "]" * 127 + "}")
    write(t, "depth-129", '{"prompt":"x","extra":' + "[" * 128 + "]" * 128 + "}")


def priority_tag():
    t = "priority_tag"
    def tagged(priority, body):
        if isinstance(body, str):
            body = body.encode()
        return struct.pack("<q", priority) + body
    write(t, "completion", tagged(5, BODY))
    write(t, "chat-with-priority", tagged(-3, CHAT))
    write(t, "two-priorities", tagged(1, '{"priority":1,"prompt":"x","priority":2}'))
    write(t, "escaped-key", tagged(7, '{"prompt":"x","\\u0070riority":9}'))
    write(t, "priority-object", tagged(0, ' {"priority":{"priority":[1,{"priority":2}]},"prompt":"p"} \n'))
    write(t, "strings-with-brackets", tagged(-(1 << 63), '{"prompt":"}]{[\\"priority\\"","model":"m"}'))
    write(t, "empty-object", tagged((1 << 63) - 1, "{}"))
    write(t, "depth-128", tagged(2, '{"prompt":"x","extra":' + "[" * 127 + "]" * 127 + "}"))
    write(t, "depth-129", tagged(2, '{"prompt":"x","extra":' + "[" * 128 + "]" * 128 + "}"))
    write(t, "deep-unclosed", tagged(3, '{"prompt":"x","extra":' + "[" * 100000))


def sse():
    t = "sse"
    stream = (b': ping\n\nevent: message\ndata: {"a":1}\ndata: {"b":2}\n\n'
              b'data: [DONE]\r\n\r\ndata:x\rdata: y\r\r\n\nretry: 5\nid: 1\nfield\n\n')
    write(t, "whole", b"\x00\x00" + stream)
    write(t, "byte-by-byte", b"\x00\x01\x00" + stream)
    write(t, "crlf-split", b"\x00\x03\x01\x02\x00" + b"data: a\r\n\r\ndata: b\r\r\r\n")
    write(t, "limit", b"\xc0\x05\x00" + b"data: " + b"z" * 400 + b"\n\ndata: small\n\n")
    write(t, "blank-lines", b"\x00\x00\n\n\r\n\r\r\ndata: after blanks\n\n")


STATE = (b'{"waiting":2,"running":5,"kv_usage":0.25,"kv_capacity_tokens":100000,'
         b'"prefill_pending_tokens":1234,"moe_pressure":1.1,"taken_at":12.5}')


def engine_state():
    t = "engine_state"
    write(t, "stream", b"data: " + STATE + b"\n\n: keep-alive\n\ndata: " + STATE + b"\n\n")
    write(t, "hostile-values",
          b'data: {"waiting":-1e308,"running":1e308,"kv_usage":1e400,"moe_pressure":-5}\n\n'
          b'data: {"waiting":1e9,"running":1000000001,"kv_usage":-0.0,"kv_capacity_tokens":1e13,'
          b'"prefill_pending_tokens":-1,"moe_pressure":0}\n\n'
          b'data: {"waiting":18446744073709551615,"running":-9223372036854775808,"kv_usage":1.01}\n\n'
          b'data: {"waiting":"3","running":null,"kv_usage":[1]}\n\n'
          b'data: {"waiting":0.4999999999999999,"running":2.5,"kv_usage":1.0000001,"moe_pressure":1e4}\n\n')
    write(t, "lines", STATE + b"\n[1,2]\n{}\n\"x\"\n{\"waiting\":1,\"running\":1,\"kv_usage\":0.5,\"moe_pressure\":1e-320}\n")
    write(t, "deep", b"data: " + b"[" * 5000 + b"\n\n")


VLLM_PAGE = b"""# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="1",model_name="m"} 2.0
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:num_requests_running{engine="0",model_name="other"} 100.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
vllm:cache_config_info{block_size="16",num_gpu_blocks="1000",model_name="m"} 1.0
gimbal:prefill_pending_tokens{engine="0",model_name="m"} 4096 1700000000000
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.3",model_name="m"} 1
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 2
"""


def prometheus():
    t = "prometheus"
    write(t, "vllm-page", VLLM_PAGE)
    write(t, "old-names", 'vllm:num_requests_running{model_name="m"} 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.75\n')
    write(t, "waiting-minus-1e308", 'vllm:num_requests_waiting{model_name="m"} -1e308\nvllm:num_requests_running 1\n')
    write(t, "nan-inf", 'vllm:num_requests_waiting NaN\nvllm:num_requests_running +Inf\n'
          'vllm:kv_cache_usage_perc -Inf\ngimbal:prefill_pending_tokens nan\n')
    write(t, "huge-cache-config", 'vllm:num_requests_running 1\n'
          'vllm:cache_config_info{block_size="9223372036854775807",num_gpu_blocks="9223372036854775807"} 1\n'
          'vllm:cache_config_info{block_size="99999999999999999999",num_gpu_blocks="None"} 1\n')
    write(t, "sums-overflow", "".join('vllm:num_requests_waiting{engine="%d"} 999999999\n' % i for i in range(4)))
    write(t, "labels-escapes", 'vllm:num_requests_waiting{model_name="m\\"\\\\\\n",engine="0",} 1 -5\n'
          'x{a="b"  ,  c = "d"} 0x10\n{} 1\nname{unterminated="x} 1\n')
    write(t, "garbage", b"\x00\xff vllm:num_requests_waiting\n#\n# TYPE\n# TYPE a b c d\n\t\t\r\n" + b"1e999999 " * 20)


def scenario_yaml():
    t = "scenario_yaml"
    write(t, "default", read("configs/scenarios/default.yaml"))
    write(t, "deepseek-32xh200", read("configs/scenarios/deepseek-v3-32xh200.yaml"))
    base = read("configs/scenarios/default.yaml").decode()
    write(t, "huge-num-requests", base.replace("num_requests: 4000", "num_requests: 1000000000000"))
    small = """name: s
model: qwen3-30b-a3b
gpu: h200
topology: hgx-8gpu
cluster: {dp: 8}
workload: {kind: synthetic, num_requests: 10, rate: RATE}
stacks: [{name: a, dispatch: gimbal, queue: gimbal, step: gimbal}]
"""
    write(t, "small", small.replace("RATE", "10"))
    write(t, "rate-1e-9", small.replace("RATE", "1e-9"))
    write(t, "rate-inf", small.replace("RATE", ".inf"))
    write(t, "duplicate-keys", small.replace("RATE", "10") + "cluster: {dp: 2}\nname: t\n")
    write(t, "set-overrides", "#set workload.rate=3\n#set stacks.0.queue=fcfs\n#set cluster.dp=4\n" + small.replace("RATE", "10"))
    write(t, "set-deep", "#set a.b.c.d.e.f=1\n#set stacks.99.queue=x\n#set =\n" + small.replace("RATE", "10"))
    write(t, "trace-workload", small.replace("{kind: synthetic, num_requests: 10, rate: RATE}",
                                             "{kind: azure, path: ../../../../etc/passwd, time_scale: 0, max_requests: -1}"))
    write(t, "anchors-and-tags", "a: &x {b: *x}\nmodel: !!binary aGVsbG8=\n? [complex, key]\n: v\n")
    write(t, "deep-flow", "name: " + "[" * 3000 + "]" * 3000 + "\n")


def router_yaml():
    t = "router_yaml"
    write(t, "router", read("configs/router/router.yaml"))
    write(t, "vllm-baseline", read("configs/router/vllm_baseline.yaml"))
    write(t, "ipv6-unterminated", 'backends:\n  - {url: "http://[::1", model: m}\n')
    write(t, "ipv6", 'backends:\n  - {url: "http://[::1%eth0]:8001/v1/", model: m, state: push}\n'
          '  - {url: "http://[fe80::1]", model: m, max_inflight: 1}\n')
    write(t, "bad-urls", 'backends:\n  - {url: "http://h:99999", model: m}\n  - {url: "http://u@h/", model: m}\n'
          '  - {url: "https://h", model: m}\n  - {url: "http://h:1:2", model: m}\n  - {url: "http://", model: m}\n')
    write(t, "duplicate-names", 'backends:\n  - {name: a, url: "http://a:1", model: m}\n'
          '  - {name: a, url: "http://b:2", model: m}\n')
    write(t, "duplicate-keys", 'listen: {port: 1}\nlisten: {port: 2}\nbackends: [{url: "http://a:1", model: m}]\n')
    write(t, "state-and-limits", 'backends: [{url: "http://a:1", model: m}]\nstate: {source: metrics, push_stale_s: -1}\n'
          'limits: {body_limit_bytes: 18446744073709551616, max_attempts: 0}\nlisten: {threads: 100000, port: -1}\n')


def traces():
    t = "traces"
    write(t, "azure", head("examples/traces/azure_sample.csv", 20))
    write(t, "burstgpt", head("examples/traces/burstgpt_sample.csv", 20))
    write(t, "mooncake", head("examples/traces/mooncake_sample.jsonl", 10))
    write(t, "azure-odd", '\ufeffGeneratedTokens,"TIMESTAMP",ContextTokens,extra\r\n'
          '1,2023-11-16T18:15:46Z,5,"a,""b"""\r\n0,2023-02-29 00:00:00.5,0,x\r\n'
          '3,1969-12-31 23:59:59.9999999999,7\r\n4,9999-12-31 23:59:60.000,12.0,\r\n'
          '5,2023-11-16 18:15:46.,1e3\r\n6,"unterminated,1\r\n')
    write(t, "burstgpt-odd", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
          "1e308,ChatGPT,1,1,2,x\n-5,GPT-4,3,0,3,x\nnan,GPT-4,3,1,4,x\n5,ChatGPT,9223372036854775807,1,1,x\n"
          "4,ChatGPT, 12 , 3 ,15,x\n")
    write(t, "mooncake-odd", '{"timestamp": 1e308, "input_length": 1, "output_length": 1}\n'
          '{"timestamp": -1, "input_length": 0, "output_length": -3, "hash_ids": [18446744073709551615, -1]}\n'
          '{"timestamp": 5, "input_length": 1e20, "output_length": 2, "hash_ids": "x"}\n'
          '[1]\n\n{"timestamp": 2, "input_length": 10, "output_length": 10, "hash_ids": []}\n')
    write(t, "empty", "")
    # A Mooncake line nested deep enough to overflow nlohmann's recursive dump() in the error message.
    write(t, "mooncake-deep-line", "[" * 20000 + "]" * 20000 + "\n", "crash-")
    write(t, "mooncake-deep-field", '{"timestamp": ' + "[" * 20000 + "]" * 20000 + "}\n")


def placement_stats():
    t = "placement_stats"
    stats = read("examples/placement/stats.json")
    topo = read("examples/placement/topology.yaml")
    cur = read("examples/placement/current.json")
    write(t, "stats", stats)
    write(t, "current", cur)
    write(t, "topology", topo)
    write(t, "stats-topology", stats + b"\n====\n" + topo)
    write(t, "stats-topology-current", stats + b"\n====\n" + topo + b"\n====\n" + cur)
    big = stats.replace(b"[[[164, 222", b"[[[1e308, 1e308")
    write(t, "counts-1e308", big + b"\n====\n" + topo)
    rng = random.Random(10)
    counts = [[[1e308 if rng.random() < 0.5 else rng.randint(0, 50) for _ in range(8)] for _ in range(4)]]
    import json
    allbig = json.dumps({"format": "gimbal.routing_stats/1", "layers": 1, "sources": 4, "experts": 8,
                         "counts": counts})
    write(t, "counts-1e308-small", allbig + '\n====\n{"gpus": 2, "gpus_per_node": 1, "slots_per_gpu": 5, "alpha": 0.2, "beta": 1}')
    write(t, "huge-dims", '{"format": "gimbal.routing_stats/1", "layers": 1000000000, "sources": 1000000000, '
          '"experts": 1000000000, "counts": [[[1]]]}')
    write(t, "bad-placement", '{"format": "gimbal.placement/1", "layers": 1, "experts": 4, "gpus": 2, '
          '"slots_per_gpu": 2, "phy2log": [[0, 1, 2, 7]]}')
    # Nesting deep enough to overflow the stack of nlohmann's recursive dump() when a reader quotes
    # a malformed value in its error message (found by this target; 20000 levels, 40 KB each).
    deep = "[" * 20000 + "]" * 20000
    write(t, "deep-format", '{"format": ' + deep + "}", "crash-")
    write(t, "deep-layers", '{"layers": ' + deep + "}", "crash-")
    write(t, "deep-count", '{"layers": 1, "sources": 1, "experts": 1, "counts": [[[' + deep + "]]]}",
          "crash-")
    write(t, "deep-placement-key", '{"format": "gimbal.placement/1", "layers": ' + deep + "}",
          "crash-")
    write(t, "deep-phy2log", '{"layers": 1, "experts": 1, "gpus": 1, "slots_per_gpu": 1, "phy2log": [['
          + deep + "]]}", "crash-")
    write(t, "topology-json", '{"gpus": 4, "gpus_per_node": 3, "alpha": 2, "beta": 1, "expert_groups": 0, '
          '"expert_bytes": -1, "slots_per_gpu": 2147483647}')


def c_api():
    t = "c_api"
    rng = random.Random(7)
    def inst(mode, gpus, gpn, cost_scale, alpha, beta, groups, ebytes, layers, sources, experts,
             slots, count_scale, current, counts, extra):
        return bytes([mode, gpus, gpn, cost_scale, alpha, beta, groups, ebytes, layers, sources,
                      experts, slots, count_scale, current]) + bytes(counts) + bytes(extra)
    n = 2 * 8 * 16
    counts = [rng.randint(0, 239) for _ in range(n)]
    cur = [0] * (2 * 4 * 5)
    routes = [rng.randint(0, 20) for _ in range(24)]
    write(t, "gimbal", inst(0, 4, 2, 0, 20, 100, 1, 1, 2, 8, 16, 5, 0, 0, counts, cur + routes))
    write(t, "gimbal-params", inst(2, 4, 2, 0, 20, 100, 2, 1, 2, 8, 16, 5, 0, 1, counts, cur + routes))
    write(t, "eplb", inst(1, 4, 2, 0, 20, 100, 2, 1, 2, 8, 16, 5, 0, 1, counts, cur + routes))
    write(t, "counts-1e308", inst(0, 4, 2, 0, 20, 100, 1, 1, 2, 8, 16, 5, 251, 0,
                                  [245 if rng.random() < 0.5 else rng.randint(0, 239) for _ in range(n)],
                                  cur + routes))
    write(t, "nan-counts", inst(0, 2, 0, 200, 242, 243, 1, 1, 1, 2, 4, 2, 0, 0, [242, 1, 2, 3, 4, 5, 6, 7], routes))
    write(t, "bad-current", inst(1, 2, 1, 0, 20, 100, 1, 1, 1, 2, 4, 3, 0, 1, [1] * 8, [250, 251, 252, 253, 254, 255] + routes))
    write(t, "negative-dims", inst(0, 255, 0, 0, 20, 100, 255, 1, 255, 255, 255, 255, 0, 0, [], routes))
    write(t, "zero-dims", inst(0, 0, 0, 0, 20, 100, 0, 1, 0, 0, 0, 0, 0, 0, [], routes))


def msgpack(v):
    """A minimal msgpack encoder for the kv_events seeds: None, bool, int, float, str, bytes, list,
    dict (insertion order), and Raw (bytes written as they are)."""
    if isinstance(v, Raw):
        return v.data
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return (b"\xda" + struct.pack(">H", len(b)) if len(b) < 65536
                else b"\xdb" + struct.pack(">I", len(b))) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(msgpack(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(msgpack(k) + msgpack(x) for k, x in v.items())
    raise TypeError(type(v))


class Raw:
    def __init__(self, data):
        self.data = data


def kv_events():
    t = "kv_events"
    stored = {"type": "BlockStored", "block_hashes": [11, 12, 13], "parent_block_hash": 10,
              "token_ids": list(range(48)), "block_size": 16, "lora_id": None, "medium": "GPU"}
    removed = {"type": "BlockRemoved", "block_hashes": [12], "medium": "GPU"}
    write(t, "stored", msgpack([1765000000.25, [stored], 0]))
    write(t, "stored-removed-cleared-stored",
          msgpack([1765000001.0, [stored, removed, {"type": "AllBlocksCleared"},
                                  dict(stored, block_hashes=[21, 22], parent_block_hash=None)], 3]))
    write(t, "no-rank", msgpack([1765000002.0, [removed], None]))
    write(t, "two-fields-only", msgpack([7, []]))
    write(t, "array-form", msgpack([1.5, [["BlockStored", [1, 2], None, [], 16, None, "GPU"],
                                          ["BlockRemoved", [2], "GPU"], ["AllBlocksCleared"]], 1]))
    write(t, "bytes-and-negative-hashes",
          msgpack([2.0, [dict(stored, block_hashes=[bytes(range(32)), -1, 2 ** 64 - 1],
                              parent_block_hash=bytes(8))], 0]))
    write(t, "group-and-lora",
          msgpack([3.0, [dict(stored, lora_id=4, lora_name="adapter", group_idx=1),
                         dict(removed, group_idx=1)], 2]))
    write(t, "unknown-field", msgpack([4.0, [dict(stored, future_field={"x": [1, 2]})], 0]))
    # Hostile: an unknown type, no type, wrong types, a lie about an array's length, nesting,
    # trailing bytes, a NaN and an infinite timestamp, a huge string, a batch that is not an array.
    write(t, "unknown-type", msgpack([5.0, [{"type": "BlockMoved", "block_hashes": [1]}], 0]))
    write(t, "no-type", msgpack([5.0, [{"block_hashes": [1]}], 0]))
    write(t, "hash-as-string", msgpack([5.0, [dict(stored, block_hashes=["11"])], 0]))
    write(t, "array-length-lie", b"\x93\xcb" + struct.pack(">d", 1.0) + b"\xdd\xff\xff\xff\xff\x80")
    write(t, "deep-nesting", b"\x93\x01\x91" + b"\x91" * 64 + b"\xc0" + b"\x00")
    write(t, "trailing-bytes", msgpack([6.0, [], 0]) + b"\x00\x01")
    write(t, "nan-ts", msgpack([float("nan"), [removed], 0]))
    write(t, "inf-ts", msgpack([float("inf"), [], 0]))
    write(t, "long-string", msgpack([6.0, [dict(stored, medium="G" * 65537)], 0]))  # 64 KiB + 1
    write(t, "not-an-array", msgpack({"ts": 1.0, "events": []}))
    write(t, "empty", b"")
    # Found by the fuzzer: an integral timestamp (-3.0) that the encoder wrote as an integer.
    write(t, "negative-integral-ts", msgpack([-3.0, [removed], 0]), prefix="crash-")
    # Sequence frames (the target also reads the input as 8-byte sequence numbers): in order, a
    # gap, a late duplicate, a restart, the largest numbers and negative ones.
    seqs = [0, 1, 2, 5, 3, 0, 1, 2 ** 63 - 2, 2 ** 63 - 1, -1, 4, 4]
    write(t, "sequence-frames", b"".join(struct.pack(">q", q) for q in seqs))


def main():
    for fn in (http_request, http_response, completion_body, priority_tag, sse, engine_state,
               prometheus, scenario_yaml, router_yaml, traces, placement_stats, c_api, kv_events):
        fn()


if __name__ == "__main__":
    main()
