#!/usr/bin/env bash
# Benchmark: tlswatch beside its peers on the same 1 GB capture, in the same run.
#
#   bench/run.sh                 # tlswatch vs ndpiReader; RSS; versions vs the truth file
#   WITH_TSHARK=1 bench/run.sh   # also time tshark (about 30 s a run)
#   SIZE=50M bench/run.sh        # a smaller capture
#   FLOOD=1 bench/run.sh         # also 1.5M SYNs, then 1.5M UDP datagrams, from distinct
#                                # sources (FLOOD_N), then 1M QUIC Initials each holding a
#                                # partial ClientHello (QUIC_FLOOD_N), default options and
#                                # --memcap 64M, beside the capture, same run
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

if [ -n "${FLOOD:-}" ]; then
  N=${FLOOD_N:-1500000}
  FL=${FLOOD_PCAP:-/tmp/syn-flood-$N.pcap}
  [ -f "$FL" ] || python3 bench/gen_syn_flood.py -n "$N" -o "$FL"
  echo "flood: $FL ($N SYNs)"
  hyperfine -w 1 -r "${RUNS:-3}" "$BIN -r $F --ndjson >/dev/null" \
    "$BIN -r $FL --ndjson >/dev/null" "$BIN -r $FL --ndjson --memcap 64M >/dev/null"
  UF=${UDP_FLOOD_PCAP:-/tmp/udp-flood-$N.pcap}
  [ -f "$UF" ] || python3 bench/gen_syn_flood.py --udp -n "$N" -o "$UF"
  echo "UDP flood: $UF ($N datagrams)"
  hyperfine -w 1 -r "${RUNS:-3}" "$BIN -r $UF --ndjson >/dev/null" "$BIN -r $UF --ndjson --memcap 64M >/dev/null"
  for opts in "" "--memcap 64M"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$BIN" -r "$UF" --ndjson $opts 2>/tmp/tlswatch-flood-time.txt | tail -n 1 |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print("udp", s["udp"]["flows"], "evicted", s["udp"]["evicted"], "memory", s["memory"])'
    echo "  UDP ${opts:-default}: $(grep -E "Maximum resident" /tmp/tlswatch-flood-time.txt)"
  done
  QN=${QUIC_FLOOD_N:-1000000}
  QF=${QUIC_FLOOD_PCAP:-/tmp/quic-flood-$QN.pcap}
  [ -f "$QF" ] || python3 bench/gen_quic_flood.py -n "$QN" -o "$QF"
  echo "QUIC flood: $QF ($QN Initials)"
  hyperfine -w 1 -r "${RUNS:-3}" "$BIN -r $QF --ndjson >/dev/null" "$BIN -r $QF --ndjson --memcap 64M >/dev/null"
  for opts in "" "--memcap 64M"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$BIN" -r "$QF" --ndjson $opts 2>/tmp/tlswatch-flood-time.txt | tail -n 1 |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print("udp", s["udp"]["flows"], "quic", s["udp"]["quic"], "evicted", s["udp"]["evicted"], "memory", s["memory"])'
    echo "  QUIC ${opts:-default}: $(grep -E "Maximum resident" /tmp/tlswatch-flood-time.txt)"
  done
  for opts in "" "--memcap 64M"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$BIN" -r "$FL" --ndjson $opts 2>/tmp/tlswatch-flood-time.txt | tail -n 1 |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print("flows", s["flows"], "memory", s["memory"])'
    echo "  ${opts:-default}: $(grep -E "Maximum resident" /tmp/tlswatch-flood-time.txt)"
  done
fi
