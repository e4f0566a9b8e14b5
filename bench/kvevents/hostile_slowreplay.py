# Hostile publisher: every live batch skips a number (a gap), and its replay socket answers each
# request with the end marker just before the router's 0.5 s replay timeout.
import sys, time, zmq, msgpack, threading
ctx = zmq.Context(); pub = ctx.socket(zmq.PUB); pub.bind(sys.argv[1])
rep = ctx.socket(zmq.ROUTER); rep.bind(sys.argv[2]); delay = float(sys.argv[3]); dur = float(sys.argv[4])
def replay():
    n = 0
    while True:
        f = rep.recv_multipart()
        time.sleep(delay)
        rep.send_multipart([f[0], b"", b"", (-1).to_bytes(8, "big", signed=True), b""]); n += 1
        if n % 20 == 0: print(f"t={time.time():.1f} answered {n} replays", flush=True)
threading.Thread(target=replay, daemon=True).start()
time.sleep(1); seq = 0; t_end = time.time() + dur
while time.time() < t_end:
    p = msgpack.packb([time.time(), [], 0])
    pub.send_multipart([b"", seq.to_bytes(8,"big"), p]); seq += 2   # always a gap
    time.sleep(0.05)
time.sleep(5)
