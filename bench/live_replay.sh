#!/usr/bin/env bash
# Live-capture benchmark: replays the benchmark capture at top speed into a veth pair
# whose far end sits in a network namespace of its own (nothing leaves the machine),
# while `tlswatch -i` listens on the near end; prints libpcap's received/dropped
# counters and tlswatch's CPU time and peak RSS.
#
#   sudo bench/live_replay.sh            # needs root, tcpreplay (apt-get install tcpreplay), iproute2
#   BUFFER=256 sudo bench/live_replay.sh # kernel ring size in MiB
set -euo pipefail
cd "$(dirname "$0")/.."
F=${BENCH_PCAP:-/tmp/bench-1G.pcap}
[ -f "$F" ] || python3 ../shared/bench/gen_bench_pcap.py -o "$F" --size 1G --seed 1
cargo build --release --locked --features live
NS=twbench
ip netns add $NS 2>/dev/null || true
ip link add twA type veth peer name twB 2>/dev/null || true
ip link set twB netns $NS 2>/dev/null || true
ip link set twA up
ip netns exec $NS ip link set twB up
OUT=$(mktemp)
/usr/bin/time -v target/release/tlswatch -i twA --ndjson --keep-root --buffer-size "${BUFFER:-128}" >"$OUT" 2>"$OUT.time" &
sleep 2
ip netns exec $NS tcpreplay --topspeed -i twB "$F" 2>&1 | grep -E "Actual|Rated"
sleep 2
pkill -INT -f "tlswatch -i twA"
wait || true
tail -1 "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("capture:", d["capture"], "analysed packets:", d["packets"]["total"], "flows:", d["flows"]["total"])'
grep -E "User time|System time|Maximum resident" "$OUT.time"
TRUTH=${F%.pcap}.truth.tsv
[ -f "$TRUTH" ] && python3 bench/check_truth.py "$TRUTH" "$OUT" | head -1
ip netns del $NS
