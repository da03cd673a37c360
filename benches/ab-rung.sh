#!/bin/bash
# Interleaved A/B of the two confinement rungs with one harness binary:
# SANDTAR_BENCH_RUNG=namespaces against =landlock, ROUNDS rounds (default 10),
# the order flipped every round; small-quick plain on tmpfs and the tiny jobs.
#   cargo bench --bench extract --no-run
#   BIN=target/release/deps/extract-<hash> benches/ab-rung.sh
# Prints each run, then medians and the median of the paired ratios.
set -eu
: "${BIN:?path of the extract bench binary}"
ROUNDS=${ROUNDS:-10}
OUT=${OUT:-/tmp/ab-rung.raw}
: > "$OUT"
run() { # rung
  local small tiny
  small=$(SANDTAR_BENCH_RUNG=$1 SANDTAR_BENCH_QUICK=1 SANDTAR_BENCH_DESTS=tmpfs \
    "$BIN" --bench 'small-quick/sandtar/plain/tmpfs' 2>&1 |
    awk -F'|' '/^\| small-quick \| plain/ {gsub(/ ms| /,"",$5); print $5}')
  tiny=$(SANDTAR_BENCH_RUNG=$1 "$BIN" --bench 'tiny/sandtar/seq' 2>&1 |
    awk -F'|' '/^\| tiny\/sandtar\/seq\// {gsub(/ /,"",$3); print $3}')
  echo "$r $1 small_ms=$small tiny_seq_jobs=$tiny load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run namespaces; run landlock; else run landlock; run namespaces; fi
done
python3 - "$OUT" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, rung, *kv = line.split()
    runs[r][rung] = {k: float(v) for k, v in (x.split('=') for x in kv)}
for key in ('small_ms', 'tiny_seq_jobs'):
    ns = [x['namespaces'][key] for x in runs.values()]
    ll = [x['landlock'][key] for x in runs.values()]
    paired = [x['landlock'][key] / x['namespaces'][key] for x in runs.values()]
    print(f"{key}: namespaces {statistics.median(ns):.1f} ({min(ns):.1f}-{max(ns):.1f}), "
          f"landlock {statistics.median(ll):.1f} ({min(ll):.1f}-{max(ll):.1f}), "
          f"landlock/namespaces {statistics.median(ll)/statistics.median(ns):.3f}, "
          f"paired {statistics.median(paired):.3f}, landlock higher in "
          f"{sum(p > 1 for p in paired)} of {len(paired)}")
PY
