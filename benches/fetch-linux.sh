#!/usr/bin/env bash
# Fetches a real-world input for the "linux" case of benches/extract.rs: Debian's
# linux-source-6.1 package (about 140 MB, through apt), whose .tar.xz holds the
# kernel source tree (~80,000 entries, ~1.3 GB). Writes, in benches/data/ (git-ignored,
# never committed):
#
#   linux-source-6.1.tar       plain
#   linux-source-6.1.tar.gz    gzip -6
#   linux-source-6.1.tar.zst   zstd -3
#   linux-source-6.1.manifest  entries and bytes, for the harness's check
#
# The harness includes the case only when all four exist:
#   cargo bench --bench extract -- linux
# Needs apt-get, dpkg-deb, xz, gzip, zstd and about 3 GB of free space.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
data="$here/data"
name=linux-source-6.1
mkdir -p "$data"
cd "$data"

deb=$(ls -t ${name}_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
    if ! apt-get download "$name"; then
        echo "apt-get download failed; updating the package lists and retrying" >&2
        apt-get update
        apt-get download "$name"
    fi
    deb=$(ls -t ${name}_*.deb | head -1)
fi
echo "package: $deb" >&2

if [ ! -f "$name.tar" ]; then
    work=$(mktemp -d "$data/unpack.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards "./usr/src/$name.tar.xz"
    xz -dc "$work/usr/src/$name.tar.xz" >"$name.tar.tmp"
    mv "$name.tar.tmp" "$name.tar"
    rm -rf "$work"
fi
if [ ! -f "$name.tar.gz" ]; then
    gzip -6 -c "$name.tar" >"$name.tar.gz.tmp"
    mv "$name.tar.gz.tmp" "$name.tar.gz"
fi
if [ ! -f "$name.tar.zst" ]; then
    zstd -3 -q -c "$name.tar" >"$name.tar.zst.tmp"
    mv "$name.tar.zst.tmp" "$name.tar.zst"
fi
if [ ! -f "$name.manifest" ]; then
    (cd "$root" && SANDTAR_BENCH_MANIFEST_OF="$data/$name.tar" cargo bench --bench extract >&2)
fi
ls -l "$data/$name".* >&2
