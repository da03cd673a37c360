#!/bin/bash
# On disk (ext4 at $DISK, default /var/tmp/sandtar-bench): `untar` without
# and with --sync (Options::sync: syncfs before the job succeeds) against GNU
# tar without and with `sync -f DEST` after it, interleaved, $ROUNDS runs each
# (default 5), medians. The destination is removed and its filesystem flushed
# before each run, outside the clock.
#   UNTAR=target/release/examples/untar ARCHIVES="a.tar b.tar" benches/disk-sync.sh
set -eu
: "${UNTAR:?path of untar}" "${ARCHIVES:?archives to extract}"
DISK=${DISK:-/var/tmp/sandtar-bench}
ROUNDS=${ROUNDS:-5}
mkdir -p "$DISK"
raw=$DISK/disk-sync.raw
: > "$raw"
for arch in $ARCHIVES; do
  cat "$arch" > /dev/null
  for i in $(seq "$ROUNDS"); do
    for which in untar untar-sync gnu gnu-sync; do
      d=$DISK/out; rm -rf "$d"; mkdir -p "$d"; sync -f "$DISK"
      s=$(date +%s.%N)
      case $which in
        untar) "$UNTAR" -q "$arch" "$d" >/dev/null ;;
        untar-sync) "$UNTAR" -q --sync "$arch" "$d" >/dev/null ;;
        gnu) tar -xf "$arch" -C "$d" ;;
        gnu-sync) tar -xf "$arch" -C "$d" && sync -f "$d" ;;
      esac
      e=$(date +%s.%N)
      echo "$(basename "$arch") $which $(echo "$e - $s" | bc)" >> "$raw"
    done
  done
done
rm -rf "$DISK/out"
python3 - "$raw" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
  a, w, t = l.split(); d[(a, w)].append(float(t))
for a in sorted({a for a, _ in d}):
  m = {w: statistics.median(d[(a, w)]) for (b, w) in d if b == a}
  print(a, ' '.join('%s %.3f' % (w, m[w]) for w in ['untar', 'untar-sync', 'gnu', 'gnu-sync']),
        ' untar/gnu %.2f  untar-sync/gnu-sync %.2f' % (m['untar'] / m['gnu'], m['untar-sync'] / m['gnu-sync']))
PY
