#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, derived from the recorded fixtures.

    python3 fuzz/seed_corpus.py [OUT_DIR]     # default: fuzz/corpus

Writes OUT_DIR/<target>/<name> for every target:
  capture, pipeline,  the capture files themselves (up to 256 KiB each)
  threads
  decode              [link type index] + frame, for a few frames of every capture
  tls, starttls,      each TCP connection's payload as a transcript (see fuzz/src/lib.rs),
  analyzer            prefixed as the target expects
  reassembly          each connection's client segments as stream operations
Also reads ../shared/captures (or ../../shared/captures) when present. Only the standard library is used.
"""

import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Order of LINKTYPES in fuzz_targets/decode.rs.
LINKTYPES = [0, 1, 9, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 239, 276]
# File-name words that select a STARTTLS protocol, tried in this order (an
# "http-upgrade" capture is HTTP, though it holds PostgreSQL's "pg"); a protocol of
# the registry not listed here is selected by its own name.
PROTO_WORDS = [
    ("smtp", ["smtp", "lmtp", "submission"]),
    ("imap", ["imap"]),
    ("pop3", ["pop3"]),
    ("ftp", ["ftp"]),
    ("xmpp", ["xmpp"]),
    ("nntp", ["nntp"]),
    ("sieve", ["sieve"]),
    ("irc", ["irc"]),
    ("http", ["http"]),
    ("telnet", ["telnet"]),
    ("postgres", ["pg", "postgres"]),
    ("mysql", ["mysql"]),
    ("ldap", ["ldap"]),
    ("rdp", ["rdp"]),
    ("tds", ["tds", "mssql"]),
    ("socks", ["socks"]),
]
MAX_CAPTURE = 256 * 1024
MAX_TRANSCRIPT = 64 * 1024


def packets(path):
    """(linktype, frame) for every packet of a pcap or pcapng file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        lt = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8 : off + 12])[0]
            yield lt, data[off + 16 : off + 16 + incl]
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off, ifaces = 0, []
        while off + 12 <= len(data):
            btype, blen = struct.unpack(e + "II", data[off : off + 8])
            if blen < 12:
                break
            body = data[off + 8 : off + blen - 4]
            if btype == 0x0A0D0D0A:
                ifaces = []
            elif btype == 1:
                ifaces.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                iface, _, _, cap = struct.unpack(e + "IIII", body[:16])
                if iface < len(ifaces):
                    yield ifaces[iface], body[20 : 20 + cap]
            elif btype == 3 and ifaces:
                yield ifaces[0], body[4:]
            off += blen


def ip_payload(lt, frame):
    """The IP packet inside a frame of the common link types, else None."""
    if lt == 1:
        off, et = 14, frame[12:14]
        while et in (b"\x81\x00", b"\x88\xa8") and len(frame) >= off + 4:
            et, off = frame[off + 2 : off + 4], off + 4
        return frame[off:] if et in (b"\x08\x00", b"\x86\xdd") else None
    if lt == 113:
        return frame[16:]
    if lt == 276:
        return frame[20:]
    if lt in (101, 228, 229, 12, 14):
        return frame
    if lt in (0, 108):
        return frame[4:]
    return None


def tcp(ip):
    """(src, sport, dst, dport, seq, flags, payload) of a TCP packet, else None."""
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6:
            return None
        src, dst, t = ip[12:16], ip[16:20], ip[ihl:total]
    elif v == 6 and len(ip) >= 40:
        if ip[6] != 6:
            return None
        plen = struct.unpack(">H", ip[4:6])[0]
        src, dst, t = ip[8:24], ip[24:40], ip[40 : 40 + plen]
    else:
        return None
    if len(t) < 20:
        return None
    sport, dport, seq = struct.unpack(">HHI", t[:8])
    doff = (t[12] >> 4) * 4
    return src, sport, dst, dport, seq, t[13], t[doff:]


def connections(path):
    """For each TCP connection: (server port, [(dir, bytes)], client segments [(seq, bytes)], isn)."""
    conns = {}
    order = []
    for lt, frame in packets(path):
        t = tcp(ip_payload(lt, frame))
        if t is None:
            continue
        src, sport, dst, dport, seq, flags, payload = t
        key = tuple(sorted([(src, sport), (dst, dport)]))
        c = conns.get(key)
        if c is None:
            syn_ack = flags & 0x12 == 0x12
            client = (dst, dport) if syn_ack else (src, sport)
            c = {"client": client, "next": {}, "events": [], "segs": [], "isn": None}
            conns[key] = c
            order.append(key)
        d = 0 if (src, sport) == c["client"] else 1
        if flags & 0x02:
            c["next"][d] = (seq + 1) & 0xFFFFFFFF
            if d == 0 and c["isn"] is None:
                c["isn"] = seq
            continue
        if not payload:
            continue
        if d == 0:
            c["segs"].append((seq, payload))
        nxt = c["next"].get(d, seq)
        delta = (seq - nxt) & 0xFFFFFFFF
        if delta >= 1 << 31:  # retransmission of delivered bytes
            back = (1 << 32) - delta
            payload = payload[back:]
            seq = nxt
        elif delta:
            continue  # out of order: leave it to the fuzzer
        if payload:
            c["events"].append((d, payload))
            c["next"][d] = (seq + len(payload)) & 0xFFFFFFFF
    for key in order:
        c = conns[key]
        server_port = key[1][1] if c["client"] == key[0] else key[0][1]
        yield server_port, c["events"], c["segs"], c["isn"]


def transcript(events):
    out = bytearray()
    for d, b in events:
        while b:
            n = min(len(b), 16383)
            out += bytes([((n >> 8) << 2) | d, n & 0xFF]) + b[:n]
            b = b[n:]
        if len(out) > MAX_TRANSCRIPT:
            break
    return bytes(out[:MAX_TRANSCRIPT])


def reassembly_ops(isn, segs):
    # Mode byte 1 (odd): payloads are taken from the input, as recorded.
    out = bytearray([1]) + struct.pack(">I", isn or 0)
    out += bytes([0]) + struct.pack(">H", 0)  # SYN at the ISN
    for seq, b in segs:
        off = (seq - (isn or 0)) & 0xFFFFFFFF
        if off > 0xFFFF:
            break
        b = b[: 255 * 4]
        n = len(b) // 4
        out += bytes([1]) + struct.pack(">H", off) + bytes([n]) + b[: n * 4]
    out += bytes([6, 0, 0])  # flush
    return bytes(out)


def registry_order():
    """STARTTLS protocol names in the order of starttls::ALL (the starttls target's
    first byte indexes it), read from the registry in src/analyzer/starttls/mod.rs."""
    with open(os.path.join(ROOT, "src", "analyzer", "starttls", "mod.rs"), encoding="utf-8") as f:
        text = f.read()
    body = text[text.index("registry! {"):]
    names = re.findall(r'=>\s*"(\w+)"', body[: body.index("}")])
    unknown = [p for p, _ in PROTO_WORDS if p not in names]
    if not names or unknown:
        sys.exit(f"seed_corpus.py: registry not read, or without {unknown}")
    return names


def proto_index(name, order):
    low = os.path.basename(name).lower()
    listed = [p for p, _ in PROTO_WORDS]
    for proto, words in PROTO_WORDS + [(p, [p]) for p in order if p not in listed]:
        if any(w in low for w in words):
            return order.index(proto)
    return None


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    # The shared captures sit beside the repository (or beside a worktree's parent).
    dirs = [os.path.join(ROOT, "fixtures")]
    dirs += [os.path.join(ROOT, *up, "shared", "captures") for up in ([".."], ["..", ".."])]
    files = []
    for d in dirs:
        for dirpath, _, names in os.walk(d):
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith((".pcap", ".pcapng", ".cap"))]
    counts = {}
    order = registry_order()

    def put(target, blob):
        if not blob:
            return
        p = os.path.join(out, target)
        os.makedirs(p, exist_ok=True)
        name = hashlib.sha1(blob).hexdigest()
        with open(os.path.join(p, name), "wb") as f:
            f.write(blob)
        counts[target] = counts.get(target, 0) + 1

    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) <= MAX_CAPTURE:
            put("capture", raw)
            put("pipeline", raw)
            put("threads", raw)
        try:
            pkts = list(packets(path))
        except (struct.error, IndexError):
            continue
        for lt, frame in pkts[:4]:
            if lt in LINKTYPES:
                put("decode", bytes([LINKTYPES.index(lt)]) + frame)
        pi = proto_index(path, order)
        for port, events, segs, isn in connections(path):
            tr = transcript(events)
            if not tr:
                continue
            put("tls", tr)
            put("analyzer", struct.pack(">H", port) + b"\x00" + tr)
            if pi is not None:
                put("starttls", bytes([pi, 1]) + tr)
            if segs:
                put("reassembly", reassembly_ops(isn, segs))
    for t in sorted(counts):
        print(f"{t}: {counts[t]} seeds")


if __name__ == "__main__":
    main()
