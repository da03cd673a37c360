#!/bin/bash
# Interleaved A/B of two builds of the extract bench harness (the tiny jobs
# and small-quick plain on tmpfs), ROUNDS rounds (default 10), the order
# flipped every round; each binary is run from where it was built.
#   OLD=/path/to/old/target/release/deps/extract-<hash> \
#   NEW=target/release/deps/extract-<hash> benches/ab-builds.sh
# Prints each run, then medians, ranges and the median of the paired ratios
# (new / old).
set -eu
: "${OLD:?path of the old extract bench binary}" "${NEW:?path of the new one}"
ROUNDS=${ROUNDS:-10}
OUT=${OUT:-/tmp/ab-builds.raw}
: > "$OUT"
run() { # old|new
  local bin small tiny
  bin=$OLD; [ "$1" = new ] && bin=$NEW
  small=$(SANDTAR_BENCH_QUICK=1 SANDTAR_BENCH_DESTS=tmpfs \
    "$bin" --bench 'small-quick/sandtar/plain/tmpfs' 2>&1 |
    awk -F'|' '/^\| small-quick \| plain/ {gsub(/ ms| /,"",$5); print $5}')
  tiny=$("$bin" --bench 'tiny/sandtar' 2>&1 | awk -F'|' '
    /^\| tiny\/sandtar\/seq\// {gsub(/ /,"",$3); s=$3; p=$4; gsub(/ /,"",p)
      if (p ~ /ms$/) {sub(/ms/,"",p); p=p*1000} else sub(/µs/,"",p)}
    /^\| tiny\/sandtar\/conc16\// {gsub(/ /,"",$3); c=$3}
    /^\| tiny\/sandtar-warm16\/conc16\// {gsub(/ /,"",$3); w=$3}
    END {printf "seq_jobs=%s seq_p50_us=%s conc16_jobs=%s conc16w16_jobs=%s", s, p, c, w}')
  echo "$r $1 small_ms=$small $tiny load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run old; run new; else run new; run old; fi
done
python3 - "$OUT" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, build, *kv = line.split()
    runs[r][build] = {k: float(v) for k, v in (x.split('=') for x in kv)}
for key in ('small_ms', 'seq_jobs', 'seq_p50_us', 'conc16_jobs', 'conc16w16_jobs'):
    old = [x['old'][key] for x in runs.values()]
    new = [x['new'][key] for x in runs.values()]
    paired = [x['new'][key] / x['old'][key] for x in runs.values()]
    print(f"{key}: old {statistics.median(old):.1f} ({min(old):.1f}-{max(old):.1f}), "
          f"new {statistics.median(new):.1f} ({min(new):.1f}-{max(new):.1f}), "
          f"new/old {statistics.median(new)/statistics.median(old):.3f}, "
          f"paired {statistics.median(paired):.3f}, new higher in "
          f"{sum(p > 1 for p in paired)} of {len(paired)}")
PY
