# sends completions through the router, prints latency of each; args: port seconds
import sys, time, json, http.client
port, dur = int(sys.argv[1]), float(sys.argv[2])
prompt = "The quick brown fox jumps over the lazy dog. " * 6
t_end = time.time() + dur; worst = 0; n = 0
while time.time() < t_end:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.time()
    c.request("POST", "/v1/completions", json.dumps({"model":"m","prompt":prompt,"max_tokens":1}), {"Content-Type":"application/json"})
    r = c.getresponse(); r.read(); dt = time.time() - t0; n += 1
    worst = max(worst, dt)
    if dt > 0.2: print(f"t={time.time():.1f} status={r.status} latency={dt:.2f}s engine={r.getheader('X-Gimbal-Engine')}", flush=True)
    c.close(); time.sleep(0.05)
print(f"requests={n} worst={worst:.2f}s", flush=True)
