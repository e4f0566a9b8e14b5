# Hostile publisher: batches of ~1.8M random block hashes (16 MiB frames, within every limit)
import sys, time, zmq, msgpack, random, struct
ctx = zmq.Context(); s = ctx.socket(zmq.PUB); s.bind(sys.argv[1]); n = int(sys.argv[2]); nb = int(sys.argv[3])
# hand-pack: array32 of uint64 (0xcf + 8 bytes each)
hs = b"".join(b"\xcf" + random.getrandbits(64).to_bytes(8, "big") for _ in range(n))
ev = msgpack.packb({"type":"BlockStored","block_hashes":[]})
ev_pre = b"\x83" + msgpack.packb("type") + msgpack.packb("BlockStored") + msgpack.packb("block_hashes") + b"\xdd" + struct.pack(">I", n) + hs + msgpack.packb("block_size") + msgpack.packb(64)
payload = b"\x93" + msgpack.packb(time.time()) + b"\x92" + ev_pre + ev_pre + b"\x00"
print("payload bytes", len(payload), flush=True); time.sleep(2)
for seq in range(nb):
    s.send_multipart([b"", seq.to_bytes(8, "big"), payload])
print(f"t={time.time():.1f} sent {nb}", flush=True); time.sleep(30)
