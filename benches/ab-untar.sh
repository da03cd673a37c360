#!/bin/bash
# Interleaved A/B of two `untar` builds (whole processes, 7 runs each,
# medians): OLD and NEW are the binaries, the archives small.tar and large.tar
# in $BENCH (default /dev/shm/bench), extracted to $BENCH/out.
#   OLD=/path/to/old/untar NEW=target/release/examples/untar benches/ab-untar.sh
set -eu
: "${OLD:?path of the old untar}" "${NEW:?path of the new untar}"
BENCH=${BENCH:-/dev/shm/bench}
mkdir -p "$BENCH"
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
for arch in small large; do
  for i in 1 2 3 4 5 6 7; do
    for which in OLD NEW; do
      bin=${!which}; d=$BENCH/out; rm -rf $d; mkdir -p $d
      s=$(date +%s.%N); $bin -q $BENCH/$arch.tar $d >/dev/null || echo FAIL; e=$(date +%s.%N)
      echo "$arch $which $(echo "$e - $s" | bc)"
    done
  done
done > $BENCH/ab.raw; python3 - "$BENCH/ab.raw" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
  a,w,t=l.split(); d[(a,w)].append(float(t))
for k in sorted(d): print(k, 'median %.3f' % statistics.median(d[k]), len(d[k]))
PY
