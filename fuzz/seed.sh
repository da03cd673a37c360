#!/usr/bin/env bash
# Builds the seed corpus of the `extract` target in fuzz/corpus/extract (and
# small seeds for the other two targets): the plain tar archives of the shared
# conformance corpus (compressed ones unpacked first, when the tool is here),
# and small archives GNU tar makes from a tree built here, in every format.
# Each seed is one selector byte (0: default options, 1: full fidelity,
# 2: small limits) followed by the tar stream.
#   bash fuzz/seed.sh [path/to/shared/corpus]
set -euo pipefail
cd "$(dirname "$0")"
shared=${1:-../../shared/corpus}
out=corpus/extract
mkdir -p "$out" corpus/worker_frames corpus/job_header
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

add() { # add FILE: one seed per selector
    local f=$1 size
    size=$(stat -c %s "$f")
    [ "$size" -le 131072 ] || return 0
    for sel in '\x00' '\x01' '\x02'; do
        local seed="$work/seed"
        { printf "$sel"; cat "$f"; } >"$seed"
        cp "$seed" "$out/$(sha1sum "$seed" | cut -c1-40)"
    done
}

if [ -d "$shared" ]; then
    while IFS= read -r -d '' f; do
        case "$f" in
        *.tar | *.pax) add "$f" ;;
        *.bz2) bzip2 -dc "$f" >"$work/x.tar" && add "$work/x.tar" ;;
        *.gz) gzip -dc "$f" >"$work/x.tar" && add "$work/x.tar" ;;
        *.Z) gzip -dc "$f" >"$work/x.tar" 2>/dev/null && add "$work/x.tar" || true ;;
        *.zst) command -v zstd >/dev/null && zstd -qdc "$f" >"$work/x.tar" && add "$work/x.tar" || true ;;
        *.lz4) command -v lz4 >/dev/null && lz4 -qdc "$f" >"$work/x.tar" && add "$work/x.tar" || true ;;
        esac
    done < <(find "$shared" -type f -print0)
else
    echo "no shared corpus at $shared: generated seeds only" >&2
fi

# A small tree with one of everything.
t="$work/tree"
mkdir -p "$t/dir/sub" "$t/ro"
printf 'hello\n' >"$t/dir/file.txt"
printf '#!/bin/sh\n' >"$t/dir/exec" && chmod 4755 "$t/dir/exec"
ln -s file.txt "$t/dir/link"
ln -s ../../outside "$t/dir/dangling"
ln "$t/dir/file.txt" "$t/dir/hard"
long=$(printf 'n%.0s' $(seq 1 150))
mkdir -p "$t/$long/$long"
printf 'long\n' >"$t/$long/$long/$long"
mkfifo "$t/fifo"
truncate -s 1M "$t/sparse" && printf 'data' | dd of="$t/sparse" bs=1 seek=65536 conv=notrunc status=none
touch -d '1960-01-01 00:00:00.5' "$t/dir/old" 2>/dev/null || true
touch -d '2200-01-01' "$t/dir/future" 2>/dev/null || true
setfattr -n user.mime -v text/plain "$t/dir/file.txt" 2>/dev/null || true
chmod 0555 "$t/ro"
if [ "$(id -u)" -eq 0 ]; then
    mknod "$t/null" c 1 3
    chown 1234:5678 "$t/dir/file.txt"
fi
for fmt in gnu oldgnu posix ustar v7; do
    tar -C "$t" --format=$fmt -cf "$work/$fmt.tar" . 2>/dev/null || true
    [ -s "$work/$fmt.tar" ] && add "$work/$fmt.tar"
done
for v in 0.0 0.1 1.0; do
    tar -C "$t" --format=posix --sparse --sparse-version=$v -cf "$work/sparse-$v.tar" sparse dir
    add "$work/sparse-$v.tar"
done
tar -C "$t" --format=gnu --sparse -cf "$work/sparse-gnu.tar" sparse dir && add "$work/sparse-gnu.tar"
tar -C "$t" --format=posix --xattrs --xattrs-include='*' -cf "$work/xattrs.tar" dir && add "$work/xattrs.tar"
chmod -R u+w "$t"

# worker_frames and job_header: well-formed frames and headers.
python3 seed_frames.py
echo "seeds: $(ls "$out" | wc -l) in $out"
