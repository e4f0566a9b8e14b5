# Against `gimbal engine`'s publisher: count live batches per second on a SUB while a DEALER floods
# the replay ROUTER with requests (mode "bad": 2-frame requests; mode "zero": [empty, seq 0]).
import sys, time, zmq, json, http.client, threading, random
pub_ep, rep_ep, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = zmq.Context(); sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.SUBSCRIBE, b""); sub.connect(pub_ep)
stop = False
def load():  # keeps the engine stepping, so it publishes
    i = 0
    while not stop:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/v1/completions", json.dumps({"model":"qwen3-30b-a3b","prompt":"".join(random.choice("abcdefgh ") for _ in range(2000)),"max_tokens":4}), {"Content-Type":"application/json"})
            c.getresponse().read(); c.close()
        except Exception as e: print("req err", e)
        i += 1
threading.Thread(target=load, daemon=True).start()
def count(sec):
    n = 0; t_end = time.time() + sec; last = None
    while time.time() < t_end:
        if sub.poll(100):
            f = sub.recv_multipart(); n += 1; last = int.from_bytes(f[1], "big")
    return n, last
time.sleep(1); print("before flood: live batches in 5 s, last seq =", count(5), flush=True)
d = ctx.socket(zmq.DEALER); d.setsockopt(zmq.SNDHWM, 0); d.setsockopt(zmq.RCVHWM, 1); d.connect(rep_ep)
def flood():
    while not stop:
        if mode == "bad": d.send_multipart([b"", b"abc"], copy=True)   # 2 frames after identity: malformed? (3 incl. id) -> use 1 frame
        else: d.send_multipart([b"", (0).to_bytes(8, "big")])
threading.Thread(target=flood, daemon=True).start()
print("during flood: live batches in 10 s, last seq =", count(10), flush=True)
stop = True
