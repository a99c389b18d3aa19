#!/usr/bin/env python3
"""Compares tlswatch --ndjson output with the benchmark generator's truth file.

usage: check_truth.py TRUTH.tsv OUTPUT.ndjson
Prints, for flows whose handshake is in the capture (hello_visible=1), how many
TLS versions agree, and lists the first disagreements.
"""
import csv, json, sys

truth_path, out_path = sys.argv[1], sys.argv[2]
flows = {}
for line in open(out_path):
    d = json.loads(line)
    if d.get("type") != "flow":
        continue
    c, s = d["client"], d["server"]
    flows[(c["ip"], c["port"], s["ip"], s["port"])] = d
    flows.setdefault((s["ip"], s["port"], c["ip"], c["port"]), d)

ok = total = missing = 0
bad = []
for r in csv.DictReader(open(truth_path), delimiter="\t"):
    if r["tls_version"] in ("-", "") or r["hello_visible"] != "1":
        continue
    total += 1
    f = flows.get((r["client_ip"], int(r["client_port"]), r["server_ip"], int(r["server_port"])))
    if f is None:
        missing += 1
        bad.append(f"{r['flow_id']}: not reported")
        continue
    got = (f.get("tls") or {}).get("version")
    if got == r["tls_version"]:
        ok += 1
    else:
        bad.append(f"{r['flow_id']} {r['service']} {r['client_ip']}:{r['client_port']}: want {r['tls_version']} got {got} ({f['encryption']})")
print(f"TLS versions agreeing with the truth file: {ok}/{total} ({100.0 * ok / max(total, 1):.2f}%), {missing} not reported")
for b in bad[:20]:
    print("  " + b)
sys.exit(0 if ok == total else 1)
