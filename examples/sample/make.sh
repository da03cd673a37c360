#!/usr/bin/env bash
# Rebuilds sample.tar.gz, the archive `cargo run --example untar` extracts when
# it is given no arguments. The output is byte-for-byte reproducible with GNU tar
# and gzip: sorted names, numeric owner 0:0, one fixed mtime, no gzip name/time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 022
mkdir -p "$work/sample/docs/guide" "$work/sample/bin"
cd "$work/sample"
cat > README.txt <<'EOF'
This tree was extracted by sandtar's `untar` example, inside a confined worker
process: a fresh mount namespace whose root is this very directory.

It holds a nested directory, a symbolic link and a hard link, so that you can
look at how each kind of entry came out:

  docs/guide/intro.txt   a file two directories deep
  docs/latest            a symbolic link to guide/intro.txt
  intro-hardlink.txt     a hard link to docs/guide/intro.txt
  bin/hello.sh           an executable script (mode 755)
EOF
printf 'Hello from inside the sandbox.\n' > docs/guide/intro.txt
ln -s guide/intro.txt docs/latest
ln docs/guide/intro.txt intro-hardlink.txt
printf '#!/bin/sh\necho "hello from an extracted script"\n' > bin/hello.sh
chmod 755 bin/hello.sh
cd "$work"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2026-01-01 \
    --format=gnu -cf - sample | gzip -9n > "$here/sample.tar.gz"
tar -tvzf "$here/sample.tar.gz"
