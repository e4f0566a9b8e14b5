# Floods a replay socket with malformed requests (one frame after the identity) for 5 s.
import sys, time, zmq
ctx = zmq.Context(); d = ctx.socket(zmq.DEALER); d.connect(sys.argv[1]); time.sleep(0.5)
t_end = time.time() + 5; n = 0
while time.time() < t_end:
    for _ in range(1000): d.send_multipart([b"", b"abc"]); n += 1
    time.sleep(0.01)
print("sent", n)
