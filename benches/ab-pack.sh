#!/bin/bash
# Interleaved A/B of two builds of the pack bench harness (benches/pack.rs):
# ROUNDS rounds (default 4), each running both binaries in an order flipped
# every round, each with SANDTAR_BENCH_RUNS=RUNS (default 3); the tree is the
# bench's own (the small tree, generated) or SANDTAR_BENCH_TREE.
#   OLD=/path/to/old/target/release/deps/pack-<hash> \
#   NEW=target/release/deps/pack-<hash> benches/ab-pack.sh
# Prints the bench's table rows, each prefixed with the round, the build and
# the load; the "into/GNU (paired)" column compares within one run.
set -eu
: "${OLD:?path of the old pack bench binary}" "${NEW:?path of the new one}"
ROUNDS=${ROUNDS:-4}
for r in $(seq 1 "$ROUNDS"); do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for b in $order; do
    bin=$OLD; [ "$b" = new ] && bin=$NEW
    load=$(cut -d' ' -f1 /proc/loadavg)
    SANDTAR_BENCH_RUNS=${RUNS:-3} "$bin" --bench 2>&1 |
      grep -E '^\| (small|tree) ' | sed "s/^/$r $b load=$load /"
  done
done
