#!/usr/bin/env python3
"""Writes small synthetic traces in the public Azure, Mooncake and BurstGPT formats.

The numbers are drawn from a fixed seed (no real trace data): run it again and the files come out
byte for byte the same. Usage: python3 make_samples.py [output_dir]
"""
import datetime
import json
import os
import random
import sys

ROWS = 300


def azure(rng, path):
    # TIMESTAMP,ContextTokens,GeneratedTokens with a 7-digit fraction of a second.
    t = datetime.datetime(2023, 11, 16, 18, 15, 46, 680590)
    extra_ticks = 0  # the 7th digit (100 ns), which datetime cannot hold
    with open(path, "w", newline="") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for _ in range(ROWS):
            context = max(1, int(rng.lognormvariate(7.0, 1.0)))
            generated = max(1, int(rng.lognormvariate(5.0, 0.9)))
            f.write(f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond:06d}{extra_ticks},{context},{generated}\n")
            gap_us = int(rng.expovariate(4.0) * 1e6)
            t += datetime.timedelta(microseconds=gap_us)
            extra_ticks = rng.randrange(10)


def mooncake(rng, path):
    # One JSON object per line; hash_ids are 512-token block hashes, shared between the turns of a
    # conversation (its earlier blocks) and across conversations for a common system prompt.
    next_hash = 2  # 0 and 1 are the shared system prompt
    conversations = []
    ts = 0
    with open(path, "w") as f:
        for _ in range(ROWS):
            if conversations and rng.random() < 0.6:
                blocks = rng.choice(conversations)
                blocks.extend(range(next_hash, next_hash + rng.randint(1, 3)))
                next_hash = max(blocks) + 1
            else:
                blocks = list(range(next_hash, next_hash + rng.randint(1, 12)))
                next_hash += len(blocks)
                if rng.random() < 0.3:
                    blocks = [0, 1] + blocks  # a shared system prompt
                conversations.append(blocks)
            input_length = len(blocks) * 512 - rng.randrange(512)
            output_length = max(1, int(rng.lognormvariate(5.0, 0.8)))
            rec = {"timestamp": ts, "input_length": input_length,
                   "output_length": output_length, "hash_ids": list(blocks)}
            f.write(json.dumps(rec) + "\n")
            ts += int(rng.expovariate(3.0) * 1000)


def burstgpt(rng, path):
    # Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type; failed requests have
    # 0 response tokens.
    t = 5.0
    with open(path, "w", newline="") as f:
        f.write("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n")
        for _ in range(ROWS):
            model = "ChatGPT" if rng.random() < 0.8 else "GPT-4"
            log_type = "Conversation log" if rng.random() < 0.7 else "API log"
            request = max(0, int(rng.lognormvariate(6.0, 1.1)))
            response = 0 if rng.random() < 0.05 else max(1, int(rng.lognormvariate(5.2, 1.0)))
            f.write(f"{int(t)},{model},{request},{response},{request + response},{log_type}\n")
            t += rng.gammavariate(0.5, 0.5)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    azure(random.Random(1), os.path.join(out, "azure_sample.csv"))
    mooncake(random.Random(2), os.path.join(out, "mooncake_sample.jsonl"))
    burstgpt(random.Random(3), os.path.join(out, "burstgpt_sample.csv"))


if __name__ == "__main__":
    main()
