"""Writes test vectors for Gimbal's version of vLLM's prefix-caching block hash
(src/kvevents/vllm_block_hash.h).

Every hash comes from vLLM's own code: the hash function picked by --prefix-caching-hash-algo, the
root hash vLLM derives from PYTHONHASHSEED, the request block hasher run on a real vLLM Request, and
the conversion vLLM applies before a hash goes into a BlockStored event. Two batches are encoded by
vLLM's own event classes and msgpack encoder, once with integer hashes (vLLM's default) and once
with the raw digest bytes (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0).

Run with the Python of a venv that has vLLM 0.33 (the xxhash algorithms also need the xxhash
module; without it they are left out and the script says so):
    python tests/kvevents/vllm_hash_vectors.py src/kvevents/testdata/vllm_block_hashes.json
kvevents_tests (VllmBlockHash*) reads the file; vLLM is not needed at test time.
"""
import json
import os
import pickle
import pickletools
import random
import sys

import msgspec
from vllm import SamplingParams, __version__
from vllm.distributed.kv_events import BlockStored, KVEventBatch
from vllm.utils import hashing
from vllm.v1.core import kv_cache_utils
from vllm.v1.request import Request

CRYPTO_ALGOS = ["sha256", "sha256_cbor"]
XXHASH_ALGOS = ["xxhash", "xxhash_cbor"]

# Token ids that change how pickle and CBOR encode an integer (1, 2, 3, 5, 9 bytes) and ids
# beyond any vocabulary, down to int64's ends.
EDGE_TOKENS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40,
               2**63 - 1, -1, -24, -25, -256, -257, -(2**31), -(2**31) - 1, -(2**40), -(2**63)]


def set_seed(seed):
    if seed is None:
        os.environ.pop("PYTHONHASHSEED", None)
    else:
        os.environ["PYTHONHASHSEED"] = seed


def vllm_hashes(algo, seed, block_size, token_ids):
    """The block digests vLLM computes for a plain token prompt, and its root hash."""
    set_seed(seed)
    hash_fn = hashing.get_hash_fn_by_name(algo)
    kv_cache_utils.init_none_hash(hash_fn)
    hasher = kv_cache_utils.get_request_block_hasher(block_size, hash_fn)
    request = Request("vectors", list(token_ids), SamplingParams(max_tokens=1), None,
                      block_hasher=hasher)
    return list(request.block_hashes), kv_cache_utils.NONE_HASH


def event_hash(digest, int_form):
    os.environ["VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES"] = "1" if int_form else "0"
    value = kv_cache_utils.maybe_convert_block_hash(digest)
    os.environ.pop("VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES")
    return value


def rle(token_ids):
    runs = []
    for t in token_ids:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    return runs


def make_case(algo, seed, block_size, token_ids, compact=False):
    digests, none_hash = vllm_hashes(algo, seed, block_size, token_ids)
    int_hashes = [event_hash(d, True) for d in digests]
    assert all(isinstance(h, int) for h in int_hashes)
    assert all(event_hash(d, False) == bytes(d) for d in digests)
    case = {"algo": algo, "python_hash_seed": seed, "block_size": block_size,
            "none_hash": bytes(none_hash).hex()}
    if compact:
        case["token_ids_rle"] = rle(token_ids)
    else:
        case["token_ids"] = list(token_ids)
    case["digests"] = [bytes(d).hex() for d in digests]
    case["event_hashes"] = int_hashes
    return case, digests


def payload(block_size, token_ids, digests, int_form):
    hashes = [event_hash(d, int_form) for d in digests]
    stored = BlockStored(block_hashes=hashes[1:], parent_block_hash=hashes[0],
                         token_ids=list(token_ids[block_size:block_size * len(digests)]),
                         block_size=block_size, lora_id=None, medium="GPU", lora_name=None)
    batch = KVEventBatch(ts=1765000000.25, events=[stored], data_parallel_rank=0)
    return msgspec.msgpack.Encoder().encode(batch).hex()


def main():
    out_path = sys.argv[1]
    rng = random.Random(20261207)
    algos = list(CRYPTO_ALGOS)
    if hashing._xxhash is not None:
        algos += XXHASH_ALGOS
    else:
        print("xxhash module missing: xxhash and xxhash_cbor vectors left out", file=sys.stderr)

    cases = []
    payloads = []
    for algo in algos:
        seeds = ["0", "42", "4294967295", "random"]
        if algo in CRYPTO_ALGOS:
            seeds.insert(0, None)  # unset: vLLM's fixed default seed
        for seed in seeds:
            for block_size in (16, rng.choice([1, 2, 3]), rng.choice([4, 7, 32])):
                n_blocks = rng.randint(1, 5)
                n_tokens = n_blocks * block_size + rng.randint(0, block_size - 1)
                token_ids = [rng.choice([rng.randrange(256), rng.randrange(152064),
                                         rng.choice(EDGE_TOKENS)]) for _ in range(n_tokens)]
                case, _ = make_case(algo, seed, block_size, token_ids)
                cases.append(case)
        # A prompt shorter than one block has no hashes.
        case, _ = make_case(algo, "0", 16, [1, 2, 3])
        cases.append(case)
        # Every edge token in one block, twice.
        case, _ = make_case(algo, "7", len(EDGE_TOKENS), EDGE_TOKENS * 2)
        cases.append(case)
        # Blocks whose pickled form exceeds pickle's 64 KiB frame target: one split inside the
        # token ids, and one whose first frame holds exactly 64 KiB when None comes next.
        big = [2**40] * 20000 + [5] * 20000
        case, _ = make_case(algo, "1", 20000, big, compact=True)
        cases.append(case)
        # Parent digest (+4 opcode bytes) and MARK, ids of 2 bytes (3 for the last two), TUPLE
        # and MEMOIZE: 65536 bytes, so pickle closes the frame just before None.
        n = (65532 - (4 + (16 if algo in XXHASH_ALGOS else 32))) // 2
        edge = [7] * (n - 2) + [300, 300]
        case, _ = make_case(algo, "1", len(edge), edge, compact=True)
        if algo in ("sha256", "xxhash"):
            root = bytes.fromhex(case["none_hash"])
            key = pickle.dumps((root, tuple(edge), None), protocol=pickle.HIGHEST_PROTOCOL)
            ops = [op.name for op, _, _ in pickletools.genops(key)]
            assert ops[-5:] == ["FRAME", "NONE", "TUPLE3", "MEMOIZE", "STOP"], ops[-5:]
        cases.append(case)
        # Batches as vLLM's encoder writes them, integer and bytes hashes.
        token_ids = [rng.randrange(152064) for _ in range(16 * 3 + 5)]
        case, digests = make_case(algo, "123", 16, token_ids)
        cases.append(case)
        payloads.append({"case": len(cases) - 1, "int_form": payload(16, token_ids, digests, True),
                         "bytes_form": payload(16, token_ids, digests, False)})

    doc = {
        "generator": "tests/kvevents/vllm_hash_vectors.py",
        "vllm_version": __version__,
        "cases": cases,
        "event_payloads": payloads,
    }
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases, {len(payloads)} payloads -> {out_path}")


if __name__ == "__main__":
    main()
