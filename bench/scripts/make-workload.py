#!/usr/bin/env python3
"""Writes the benchmark's source image: a sparse raw file of SIZE bytes holding about DATA bytes of random
(incompressible) data and as much compressible, text-like data, in scattered extents. Deterministic (seeded)."""
import os
import random
import sys

path = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 4 << 30
data = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 30
extent = 1 << 20          # each extent is 1 MiB
slot = 2 << 20            # one extent per 2 MiB slot at most, at a 64 KiB-aligned offset inside it

rng = random.Random(20261125)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]

# A 32 MiB pool of text-like data; each compressible extent is a window of it at a random offset.
pool = bytearray()
while len(pool) < 32 << 20:
    pool += b" ".join(rng.choice(words) for _ in range(12)) + b".\n"
pool = bytes(pool)

def compressible(length):
    start = rng.randrange(0, len(pool) - length)
    return pool[start:start + length]

slots = list(range(size // slot))
rng.shuffle(slots)
count = data // extent
assert 2 * count <= len(slots), "image too small for that much data"
with open(path, "wb") as f:
    f.truncate(size)
    for i, s in enumerate(slots[:2 * count]):
        offset = s * slot + rng.randrange(0, (slot - extent) // 65536 + 1) * 65536
        f.seek(offset)
        f.write(os.urandom(extent) if i % 2 == 0 else compressible(extent))
