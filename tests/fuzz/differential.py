#!/usr/bin/env python3
"""Differential fuzzing of qimg against qemu-img on mutated qcow2 images.

    tests/fuzz/differential.py [--qimg PATH] [--seed N] [--iterations N]

Builds a few qcow2 images with qemu-img/qemu-io (backing file, snapshots, bitmaps, compressed and zero clusters,
subclusters, zstd), then mutates random header and metadata bytes and runs info/map/check/convert through both tools.
Exit status, stdout and stderr must be equal (after "qemu-img" -> "qimg"), convert outputs identical; qimg must never
print a .NET exception, crash or hang. Known, documented differences (README, compatibility notes) are normalised.
Differences are saved next to the work directory as diff-*.qcow2 for a reproduction. Not part of ./test.sh: it is a
maintainer's tool (a few minutes for 1000 iterations); every finding so far became a fixed test case.
"""
import argparse, collections, filecmp, os, random, re, shutil, subprocess, sys, tempfile

parser = argparse.ArgumentParser()
parser.add_argument("--qimg", default="qimg")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--iterations", type=int, default=300)
parser.add_argument("--keep", default=".", help="where to save differing images")
args = parser.parse_args()

work = tempfile.mkdtemp(prefix="qimg-fuzz-")


def run(*command, check=True):
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, errors="replace", timeout=120)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr}")
    return result


run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "base.qcow2", "8M")
run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "base.qcow2", "-F", "qcow2", "chain.qcow2")
run("qemu-io", "-c", "write -P 1 0 64k", "-c", "write -c -P 2 1M 64k", "-c", "write -z 2M 64k", "-c", "write -P 3 3M 12k", "chain.qcow2")
run("qemu-img", "snapshot", "-c", "snap1", "chain.qcow2")
run("qemu-io", "-c", "write -P 4 0 16k", "chain.qcow2")
run("qemu-img", "bitmap", "--add", "chain.qcow2", "b0")
run("qemu-io", "-c", "write -P 5 4M 64k", "chain.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,compression_type=zstd", "sub.qcow2", "8M")
run("qemu-io", "-c", "write -P 1 0 64k", "-c", "write -c -P 2 1M 64k", "-c", "write -P 3 40k 4k", "sub.qcow2")
bases = {name: open(os.path.join(work, name), "rb").read() for name in ("chain.qcow2", "sub.qcow2")}


def normalise(text):
    text = text.replace("qemu-img", "qimg")
    # Documented: qimg ends the bitmap hint's line, which qemu-img leaves unterminated.
    return re.sub(r"(on the image file to fix\.)(?!\n)", r"\1\n", text)


rng = random.Random(args.seed)
found = collections.Counter()
for iteration in range(args.iterations):
    name = rng.choice(sorted(bases))
    data = bytearray(bases[name])
    for _ in range(rng.choice([1, 2, 4])):
        position = rng.randrange(0, 512) if rng.random() < 0.35 else rng.randrange(0, len(data))
        if rng.random() < 0.5:
            data[position] = rng.randrange(256)
        else:
            value = rng.choice([0, 1, 0x200, 0x1000, 0x10000, 0x8000000000000000 | (rng.randrange(1 << 20) << 12),
                                0x4000000000000000 | rng.randrange(1 << 40), rng.randrange(1 << 24) << 9, rng.randrange(1 << 64)])
            position &= ~7
            data[position:position + 8] = value.to_bytes(8, "big")
    image = os.path.join(work, "fuzz.qcow2")
    for command in (["info", "--output=json"], ["map", "--output=json"], ["map"], ["check"], ["convert", "-O", "raw"]):
        outcomes = []
        for tool in ("qemu-img", args.qimg):
            with open(image, "wb") as f:
                f.write(data)
            extra = [os.path.join(work, f"out-{len(outcomes)}.raw")] if command[0] == "convert" else []
            for path in extra:
                if os.path.exists(path):
                    os.remove(path)
            try:
                result = run(tool, *command, image, *extra, check=False)
            except subprocess.TimeoutExpired:
                result = subprocess.CompletedProcess([], -999, "", "TIMEOUT")
            outcomes.append((result.returncode, normalise(result.stdout), normalise(result.stderr)))
        (qemu, qimg) = outcomes
        problem = None
        if "   at " in qimg[2] or "Exception" in qimg[2] or qimg[0] not in (0, 1, 2, 3, 4, 63):
            problem = "crash"
        elif qemu != qimg:
            problem = "differs"
        elif command[0] == "convert" and qemu[0] == 0 and not filecmp.cmp(os.path.join(work, "out-0.raw"), os.path.join(work, "out-1.raw"), shallow=False):
            problem = "data"
        if problem:
            key = (command[0], problem)
            found[key] += 1
            saved = os.path.join(args.keep, f"diff-{args.seed}-{iteration}-{command[0]}.qcow2")
            with open(saved, "wb") as f:
                f.write(data)
            print(f"{problem}: {' '.join(command)} on {saved}\n  qemu-img: {qemu}\n  qimg:     {qimg}", flush=True)

shutil.rmtree(work)
print(f"{args.iterations} iterations, {sum(found.values())} differences: {dict(found)}")
sys.exit(1 if found else 0)
