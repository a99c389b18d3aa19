#!/bin/sh
# CPU time of each thread of one run, from perf samples (4 kHz, by thread id).
#
#   bench/thread_cpu.sh target/release/tlswatch -r F --threads 2 --ndjson
#
# The process's own thread is the output stage. `--threads N` then starts the N
# workers and, last, the reader, so thread ids in that order are workers 0..N-1
# and the reader (ids are handed out in order on Linux). Needs `perf`.
set -eu
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -F 4000 -o "$data" -- "$@" >/dev/null
perf script -i "$data" -F pid,tid 2>/dev/null | tr "/" " " | awk '
  { n[$2]++; pid = $1; total++ }
  END {
    k = 0
    for (t in n) ids[k++] = t + 0
    # sort the thread ids (a small insertion sort: awk has none portable)
    for (i = 1; i < k; i++) { v = ids[i]; j = i - 1; while (j >= 0 && ids[j] > v) { ids[j + 1] = ids[j]; j-- } ids[j + 1] = v }
    for (i = 0; i < k; i++) {
      t = ids[i]
      role = (t == pid) ? "output stage (main)" : (i == k - 1 && k > 2) ? "reader" : "worker " (i - 1)
      if (k == 1) role = "single thread"
      printf "%-8d %-20s %.3f s\n", t, role, n[t] / 4000
    }
    printf "%-8s %-20s %.3f s\n", "", "total", total / 4000
  }'
