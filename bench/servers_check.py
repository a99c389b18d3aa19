#!/usr/bin/env python3
"""Checks `tlswatch --servers` against the flow records of the same run.

usage: python3 bench/servers_check.py BINARY CAPTURE [EXTRA_ARGS...]

Runs `BINARY -r CAPTURE --ndjson --servers`, groups the flow lines by server
(transport, ip, port) the way a jq user would, and compares every count of every
server line with that grouping. Prints the number of flows and servers checked;
exits 1 on the first mismatches.
"""
import json
import subprocess
import sys
from collections import defaultdict

SEVERITIES = ["info", "low", "medium", "high", "critical"]
TLS_USED = {"tls", "starttls", "starttls-failed", "quic", "dtls"}


def main():
    binary, capture, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    proc = subprocess.Popen([binary, "-r", capture, "--ndjson", "--servers", *extra],
                            stdout=subprocess.PIPE, text=True)
    want = defaultdict(lambda: {"flows": 0, "clients": set(), "by_encryption": defaultdict(int),
                                "versions": defaultdict(int), "cipher_suites": defaultdict(int),
                                "findings": defaultdict(int), "app_protocols": set(),
                                "worst": -1, "first": None, "last": None})
    servers, summary, nflows = [], None, 0
    for line in proc.stdout:
        rec = json.loads(line)
        kind = rec["type"]
        if kind == "flow":
            assert not servers, "a flow line after a server line"
            nflows += 1
            key = (rec.get("transport", "tcp"), rec["server"]["ip"], rec["server"]["port"])
            w = want[key]
            w["flows"] += 1
            w["clients"].add(rec["client"]["ip"])
            w["by_encryption"][rec["encryption"]] += 1
            if rec["encryption"] in TLS_USED:
                w["versions"][(rec.get("tls") or {}).get("version") or "unknown"] += 1
            cs = ((rec.get("tls") or {}).get("server_hello") or {}).get("cipher_suite")
            if cs:
                w["cipher_suites"][cs] += 1
            for code in {f["code"] for f in rec["findings"]}:
                w["findings"][code] += 1
            for f in rec["findings"]:
                w["worst"] = max(w["worst"], SEVERITIES.index(f["severity"]))
            if rec.get("app_protocol"):
                w["app_protocols"].add(rec["app_protocol"])
            w["first"] = min(filter(None, [w["first"], rec["start"]]))
            w["last"] = max(filter(None, [w["last"], rec["end"]]))
        elif kind == "server":
            servers.append(rec)
        else:
            summary = rec
    if proc.wait() not in (0, 1):
        sys.exit(f"{binary} failed")
    errors = []
    seen = set()
    for s in servers:
        key = (s["transport"], s["server"]["ip"], s["server"]["port"])
        seen.add(key)
        w = want.get(key)
        if w is None:
            errors.append(f"{key}: server line without flows")
            continue
        checks = {
            "flows": w["flows"],
            "clients": len(w["clients"]),
            "by_encryption": dict(w["by_encryption"]),
            "versions": dict(w["versions"]),
            "cipher_suites": dict(w["cipher_suites"]),
            "findings": dict(w["findings"]),
            "app_protocols": sorted(w["app_protocols"]),
            "worst_severity": SEVERITIES[w["worst"]] if w["worst"] >= 0 else None,
            "first": w["first"],
            "last": w["last"],
        }
        for field, value in checks.items():
            if s[field] != value:
                errors.append(f"{key}: {field} {s[field]!r}, flows say {value!r}")
    missing = set(want) - seen
    beyond = summary["servers"]["flows_beyond_cap"]
    if missing and beyond == 0:
        errors.append(f"{len(missing)} servers of flow lines have no server line")
    if summary["flows"]["listed"] != nflows:
        errors.append(f"summary lists {summary['flows']['listed']} flows, {nflows} flow lines")
    if errors:
        print("\n".join(errors[:20]))
        sys.exit(1)
    print(f"ok: {nflows} flows, {len(servers)} servers, every count agrees "
          f"(flows beyond the cap: {beyond}, servers with capped clients: {summary['servers']['clients_capped']})")


if __name__ == "__main__":
    main()
