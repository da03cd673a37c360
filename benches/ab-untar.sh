#!/bin/bash
# Interleaved A/B of two `untar` builds (whole processes, $ROUNDS runs each,
# default 7; medians), with GNU tar beside them when GNU=1: OLD and NEW are
# the binaries; the archives are $ARCHIVES (paths; default small.tar and
# large.tar in $BENCH, default /dev/shm/bench, made if missing), extracted to
# $BENCH/out (emptied before each run, outside the clock).
#   OLD=/path/to/old/untar NEW=target/release/examples/untar benches/ab-untar.sh
#   GNU=1 ARCHIVES="/dev/shm/bench/small.tar benches/data/linux-source-6.1.tar.zst" ...
set -eu
: "${OLD:?path of the old untar}" "${NEW:?path of the new untar}"
BENCH=${BENCH:-/dev/shm/bench}
ROUNDS=${ROUNDS:-7}
mkdir -p "$BENCH"
if [ -z "${ARCHIVES:-}" ]; then
  # 100 directories of 1,000 files of 1 KiB (GNU format); one 512 MiB file.
  [ -f "$BENCH/small.tar" ] && [ -f "$BENCH/large.tar" ] || python3 - "$BENCH" <<'PY'
import io, os, sys, tarfile
os.chdir(sys.argv[1])
with tarfile.open('small.tar', 'w', format=tarfile.GNU_FORMAT) as t:
    for i in range(100):
        d = tarfile.TarInfo('d%02d' % i); d.type = tarfile.DIRTYPE; d.mode = 0o755
        t.addfile(d)
        for j in range(1000):
            f = tarfile.TarInfo('d%02d/f%04d' % (i, j)); f.size = 1024; f.mode = 0o644
            t.addfile(f, io.BytesIO(b'x' * 1024))
with tarfile.open('large.tar', 'w', format=tarfile.GNU_FORMAT) as t:
    f = tarfile.TarInfo('big'); f.size = 512 << 20; f.mode = 0o644
    t.addfile(f, io.BytesIO(os.urandom(1 << 20) * 512))
PY
  ARCHIVES="$BENCH/small.tar $BENCH/large.tar"
fi
WHO="OLD NEW"
[ "${GNU:-0}" = 1 ] && WHO="$WHO GNU"
for arch in $ARCHIVES; do
  cat "$arch" > /dev/null   # in the page cache for everyone
  for i in $(seq "$ROUNDS"); do
    for which in $WHO; do
      d=$BENCH/out; rm -rf $d; mkdir -p $d
      case $which in
        GNU) s=$(date +%s.%N); tar -xf "$arch" -C $d || echo FAIL; e=$(date +%s.%N) ;;
        *) bin=${!which}; s=$(date +%s.%N); $bin -q "$arch" $d >/dev/null || echo FAIL; e=$(date +%s.%N) ;;
      esac
      echo "$(basename "$arch") $which $(echo "$e - $s" | bc)"
    done
  done
done > $BENCH/ab.raw; python3 - "$BENCH/ab.raw" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
  a,w,t=l.split(); d[(a,w)].append(float(t))
for a in sorted({a for a, _ in d}):
  med = {w: statistics.median(d[(a, w)]) for (b, w) in d if b == a}
  line = ' '.join('%s %.3f' % (w, med[w]) for w in sorted(med))
  if 'GNU' in med:
    line += '  NEW/GNU %.2f OLD/GNU %.2f' % (med['NEW'] / med['GNU'], med['OLD'] / med['GNU'])
  print(a, line, '  NEW/OLD %.2f' % (med['NEW'] / med['OLD']), '(%d runs)' % len(d[(a, 'NEW')]))
PY
