"""Writes one KV-event batch encoded by vLLM's own classes and encoder to the file named by argv[1].

kvevents_tests (KvEventsCodecTest.DecodesABatchFromVllmsOwnEncoder) checks the decoded values;
keep the two in step. Run through vllm_decode.sh, with the Python of a venv that has vLLM.
"""
import sys

import msgspec
from vllm.distributed.kv_events import (AllBlocksCleared, BlockRemoved, BlockStored,
                                        KVEventBatch)

stored = BlockStored(
    block_hashes=[11, 2**64 - 1, bytes(24) + bytes(range(1, 9))],
    parent_block_hash=7,
    token_ids=[5, 6, 7],
    block_size=16,
    lora_id=None,
    medium="GPU",
    lora_name=None,
    extra_keys=[None, ("adapter",), None],
    group_idx=0,
    session_id="s1",
)
batch = KVEventBatch(
    ts=1765000000.5,
    events=[stored, BlockRemoved(block_hashes=[11], medium="GPU", group_idx=0),
            AllBlocksCleared()],
    data_parallel_rank=3,
)
with open(sys.argv[1], "wb") as f:
    f.write(msgspec.msgpack.Encoder().encode(batch))
