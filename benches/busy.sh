#!/bin/bash
# Runs a command; prints its wall time and the system-wide busy CPU time
# (user + nice + system + irq + softirq from /proc/stat) over it, in seconds:
# all processes the command starts count (a sandtar worker, GNU tar's
# compressor), and so does anything else running, so use it on a quiet
# machine. This machine has no PMU counters for `perf stat`.
#   benches/busy.sh target/release/examples/pack -q /dev/shm/tree /dev/shm/p.tar
set -eu
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
s=$(busy); t0=$(date +%s.%N)
"$@"
t1=$(date +%s.%N); e=$(busy)
echo "wall $(echo "$t1 - $t0" | bc | cut -c1-5) s, busy $(echo "($e - $s) / $(getconf CLK_TCK)" | bc -l | cut -c1-5) s"
