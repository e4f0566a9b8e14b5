# an honest publisher: one small batch every 20 ms (a busy engine's steps); prints its seq
import sys, time, zmq, msgpack
ctx = zmq.Context(); s = ctx.socket(zmq.PUB); s.bind(sys.argv[1]); time.sleep(1)
seq = 0; t_end = time.time() + float(sys.argv[2])
while time.time() < t_end:
    p = msgpack.packb([time.time(), [{"type":"BlockStored","block_hashes":[seq+1],"parent_block_hash":None,"token_ids":[],"block_size":64,"lora_id":None,"medium":"GPU","lora_name":None}], 0])
    s.send_multipart([b"", seq.to_bytes(8,"big"), p]); seq += 1
    if seq % 250 == 0: print(f"t={time.time():.1f} honest sent seq {seq-1}", flush=True)
    time.sleep(0.02)
