#!/usr/bin/env bash
# Benchmark: tlswatch beside its peers on the same 1 GB capture, in the same run.
#
#   bench/run.sh                 # tlswatch vs ndpiReader; RSS; versions vs the truth file
#   WITH_TSHARK=1 bench/run.sh   # also time tshark (about 30 s a run)
#   SIZE=50M bench/run.sh        # a smaller capture
#
# Needs (Debian): apt-get install -y hyperfine time libndpi-bin tshark
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-1G}
F=${BENCH_PCAP:-/tmp/bench-$SIZE.pcap}
if [ ! -f "$F" ]; then
  python3 ../shared/bench/gen_bench_pcap.py -o "$F" --size "$SIZE" --seed 1
fi
TRUTH=${F%.pcap}.truth.tsv
cargo build --release --locked
BIN=target/release/tlswatch
echo "capture: $F ($(stat -c %s "$F") bytes)"
cmds=("$BIN -r $F --ndjson >/dev/null")
command -v ndpiReader >/dev/null && cmds+=("ndpiReader -i $F -v 2 >/dev/null")
if [ -n "${WITH_TSHARK:-}" ] && command -v tshark >/dev/null; then
  cmds+=("tshark -r $F -Y tls.handshake.type==2 -T fields -e tls.handshake.version -e tls.handshake.extensions.supported_version >/dev/null")
fi
hyperfine -w 1 -r "${RUNS:-3}" "${cmds[@]}"
/usr/bin/time -v "$BIN" -r "$F" --ndjson 2>/tmp/tlswatch-time.txt >/tmp/tlswatch-bench.ndjson
grep -E "Maximum resident set size|Elapsed" /tmp/tlswatch-time.txt
[ -f "$TRUTH" ] && python3 bench/check_truth.py "$TRUTH" /tmp/tlswatch-bench.ndjson
