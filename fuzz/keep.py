#!/usr/bin/env python3
"""Refreshes tests/data/fuzz/<target>/ from fuzz/corpus/<target>/: a greedy
cover of the edges the corpus reaches (libFuzzer's merge control file lists each
input's edges), most new edges per byte first, within a byte budget (256 KiB by
default), so the kept set stays small.

    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O && python3 keep.py extract [budget]
"""
import os
import shutil
import subprocess
import sys
import tempfile

target = sys.argv[1]
budget = int(sys.argv[2]) if len(sys.argv) > 2 else 256 * 1024
binary = f"target/x86_64-unknown-linux-gnu/release/{target}"
with tempfile.TemporaryDirectory() as tmp:
    control = os.path.join(tmp, "control")
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    subprocess.run(
        [binary, "-merge=1", "-timeout=10", "-rss_limit_mb=2048",
         f"-merge_control_file={control}", out, f"corpus/{target}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    lines = open(control).read().split("\n")
n = int(lines[0])
files = lines[2:2 + n]
edges = {}
for line in lines[2 + n:]:
    if line.startswith("COV "):
        parts = line.split()
        i = int(parts[1])
        if os.path.exists(files[i]):
            edges[i] = set(parts[2:])
size = {i: os.path.getsize(files[i]) for i in edges}
chosen, covered = [], set()
while True:
    # Most new edges per byte (plus a block, so tiny inputs do not always win).
    best = max(
        (i for i in edges if edges[i] - covered),
        key=lambda i: len(edges[i] - covered) / (size[i] + 1024),
        default=None,
    )
    if best is None or sum(size[i] for i in chosen) + size[best] > budget:
        break
    chosen.append(best)
    covered |= edges[best]
dest = f"../tests/data/fuzz/{target}"
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(dest)
for i in chosen:
    shutil.copy(files[i], dest)
# The hand-written seeds (named, not hashes) stay.
for name in os.listdir(f"corpus/{target}"):
    if len(name) != 40:
        shutil.copy(f"corpus/{target}/{name}", dest)
kept = os.listdir(dest)
total = sum(os.path.getsize(os.path.join(dest, f)) for f in kept)
reached = len(set().union(*edges.values()))
print(f"{target}: {len(kept)} files, {total} bytes, {len(covered)} of {reached} edges")
