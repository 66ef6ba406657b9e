#!/usr/bin/env python3
"""Writes a fully allocated raw file of SIZE bytes where about half of the space is explicitly written zeroes
(regions of 64 KiB to 8 MiB) and the rest random data. Deterministic (seeded)."""
import os
import random
import sys

path = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 2 << 30
rng = random.Random(7)
zero = bytes(8 << 20)
with open(path, "wb") as f:
    written = 0
    while written < size:
        length = min(size - written, rng.choice([64 << 10, 256 << 10, 1 << 20, 8 << 20]))
        f.write(zero[:length] if rng.random() < 0.5 else os.urandom(length))
        written += length
