#!/usr/bin/env bash
# GNU tar on the same inputs as benches/extract.rs, for reference.
#
#   bash benches/gnu-tar.sh                 # every case, tmpfs and disk
#   bash benches/gnu-tar.sh small tiny      # some cases
#   RUNS=10 DESTS=tmpfs bash benches/gnu-tar.sh large
#
# The inputs are written by the harness (SANDTAR_BENCH_WRITE_INPUTS, same
# generator and cache, so the very same bytes); set SANDTAR_BENCH_QUICK=1 for the
# small quick-scale inputs, as for the harness. Each run extracts into a fresh empty
# directory created (and for disk, the previous one removed and the file system
# synced) outside the timed part: with hyperfine if installed (its --prepare step
# is not timed), else with a loop around `date +%s%N`. Reports the median.
#
# GNU tar runs as `tar --no-same-owner -xf ARCHIVE -C DIR` (closest to sandtar's
# default: files owned by the extracting user; modes and times from the archive).
# For gzip and zstd GNU tar starts `gzip -d` / `zstd -d` as a second process, so
# decompression runs in parallel with extraction, like sandtar's worker does.
#
# Like the harness, on disk it runs only the large case as plain tar unless
# SANDTAR_BENCH_FULL=1.
#
# Environment: RUNS (default 5; tiny uses 20 x RUNS), DESTS (default "tmpfs disk"),
# NO_HYPERFINE=1 (use the date loop even if hyperfine is installed),
# TMPFS_DIR (default /dev/shm/sandtar-bench-gnu), DISK_DIR (default
# /var/tmp/sandtar-bench-gnu), INPUTS (default target/sandtar-bench/gnu-inputs[-quick]).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
suffix=""
if [ -n "${SANDTAR_BENCH_QUICK:-}" ] && [ "${SANDTAR_BENCH_QUICK}" != 0 ]; then
    suffix="-quick"
fi
inputs=${INPUTS:-$target/sandtar-bench/gnu-inputs$suffix}
full=""
if [ -n "${SANDTAR_BENCH_FULL:-}" ] && [ "${SANDTAR_BENCH_FULL}" != 0 ]; then
    full=1
fi
runs=${RUNS:-5}
dests=${DESTS:-tmpfs disk}
tmpfs_dir=${TMPFS_DIR:-/dev/shm/sandtar-bench-gnu}
disk_dir=${DISK_DIR:-/var/tmp/sandtar-bench-gnu}
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=(tiny small mixed large linux)
fi

need_inputs=0
for case in "${cases[@]}"; do
    [ "$case" != linux ] && need_inputs=1
done
if [ "$need_inputs" = 1 ] && [ ! -f "$inputs/tiny.tar" ]; then
    echo "writing the inputs to $inputs (cargo bench --bench extract)" >&2
    (cd "$root" && SANDTAR_BENCH_WRITE_INPUTS="$inputs" cargo bench --bench extract >&2)
fi

have_hyperfine=0
if [ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null 2>&1; then
    have_hyperfine=1
fi
out="$target/sandtar-bench/gnu-tar$suffix.md"
mkdir -p "$(dirname "$out")"
{
    echo "| case | input | dest | GNU tar median | runs | tool |"
    echo "|---|---|---|---|---|---|"
} >"$out"

# median_ns RUNS PREPARE COMMAND: prints the median wall time in nanoseconds.
median_ns() {
    local n=$1 prepare=$2 cmd=$3
    if [ "$have_hyperfine" = 1 ]; then
        local json
        json=$(mktemp)
        # No intermediate shell for the timed command (-N): its start-up would be
        # subtracted only approximately, which swamps the tiny case.
        hyperfine --style none --runs "$n" --warmup 1 -N \
            --prepare "bash -c \"$prepare\"" --export-json "$json" "$cmd" >/dev/null 2>&1
        # "median": 0.123 (seconds)
        local median
        median=$(grep -o '"median": *[0-9.eE+-]*' "$json" | head -1 | sed 's/.*: *//')
        rm -f "$json"
        awk -v s="$median" 'BEGIN { printf "%.0f\n", s * 1e9 }'
    else
        local times=() i t0 t1
        eval "$prepare"
        eval "$cmd" # warm-up
        for ((i = 0; i < n; i++)); do
            eval "$prepare"
            t0=$(date +%s%N)
            eval "$cmd"
            t1=$(date +%s%N)
            times+=($((t1 - t0)))
        done
        printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
    fi
}

fmt() {
    awk -v ns="$1" 'BEGIN {
        s = ns / 1e9
        if (s >= 1) printf "%.2f s", s; else if (s >= 1e-3) printf "%.1f ms", s * 1e3; else printf "%.0f µs", s * 1e6 }'
}

run_one() {
    local case=$1 comp=$2 archive=$3 dest_name=$4 dest_root=$5 n=$6
    local dir="$dest_root/x"
    mkdir -p "$dest_root"
    local prepare="rm -rf '$dir' && mkdir '$dir'"
    if [ "$dest_name" = disk ]; then
        prepare="$prepare && sync -f '$dest_root'"
    fi
    local ns
    ns=$(median_ns "$n" "$prepare" "tar --no-same-owner -xf '$archive' -C '$dir'")
    rm -rf "$dir"
    local tool=loop
    [ "$have_hyperfine" = 1 ] && tool=hyperfine
    printf '%-6s %-6s %-6s %s\n' "$case" "$comp" "$dest_name" "$(fmt "$ns")" >&2
    echo "| $case | $comp | $dest_name | $(fmt "$ns") | $n | $tool |" >>"$out"
}

for case in "${cases[@]}"; do
    if [ "$case" = linux ]; then
        base="$here/data/linux-source-6.1"
        if [ ! -f "$base.tar" ]; then
            echo "no $base.tar (run benches/fetch-linux.sh); skipping linux" >&2
            continue
        fi
    else
        base="$inputs/$case"
    fi
    n=$runs
    comps=(plain gzip zstd)
    if [ "$case" = tiny ]; then
        n=$((runs * 20))
        comps=(plain)
    fi
    for dest in $dests; do
        case $dest in
        tmpfs) dest_root=$tmpfs_dir ;;
        disk) dest_root=$disk_dir ;;
        *) echo "unknown destination $dest" >&2; exit 2 ;;
        esac
        for comp in "${comps[@]}"; do
            # The harness's default matrix: on disk only the large case, plain.
            if [ "$dest" = disk ] && [ -z "$full" ] && { [ "$case" != large ] || [ "$comp" != plain ]; }; then
                continue
            fi
            case $comp in
            plain) archive="$base.tar" ;;
            gzip) archive="$base.tar.gz" ;;
            zstd) archive="$base.tar.zst" ;;
            esac
            run_one "$case" "$comp" "$archive" "$dest" "$dest_root" "$n"
        done
        rmdir "$dest_root" 2>/dev/null || true
    done
done
echo >&2
cat "$out"
echo "(written to $out)" >&2
