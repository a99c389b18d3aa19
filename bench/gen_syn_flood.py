#!/usr/bin/env python3
"""A SYN flood (or port scan) capture: N SYNs from distinct sources to one server port.

    python3 bench/gen_syn_flood.py -n 1500000 -o /tmp/syn-flood.pcap [--port 443] [--pps 100000]

Every SYN comes from its own address in 10.0.0.0/8 (then 172.16.0.0/12, ...), with a
pseudo-random source port and ISN (seeded, so the file is the same every time), at
`--pps` packets per second of packet time. Ethernet, IPv4 and TCP checksums are valid.
Nothing ever answers, so every SYN is a flow without payload.

With `--udp`, each source sends one small UDP datagram instead (a DNS-style query,
to `--port`, 53 by default): a flood of UDP conversations that are neither QUIC nor DTLS.
"""

import argparse
import random
import struct


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_500_000, help="number of SYNs")
    ap.add_argument("-o", required=True, help="output pcap")
    ap.add_argument("--port", type=int, default=None, help="destination port (443, or 53 with --udp)")
    ap.add_argument("--udp", action="store_true", help="UDP datagrams instead of SYNs")
    ap.add_argument("--pps", type=int, default=100_000, help="packets per second (packet time)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.port is None:
        a.port = 53 if a.udp else 443
    rnd = random.Random(a.seed)
    dst = bytes([192, 0, 2, 1])
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    t0 = 1_700_000_000
    with open(a.o, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out = []
        for i in range(a.n):
            src = struct.pack("!I", 0x0A000000 + 1 + i)
            sport = 1024 + rnd.randrange(64511)
            isn = rnd.getrandbits(32)
            # SYN with MSS, SACK-permitted, window scale: 32-byte TCP header, like a real stack.
            opts = b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07\x00\x00"
            if a.udp:
                query = struct.pack("!HHHHHH", isn & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
                l4 = struct.pack("!HHHH", sport, a.port, 8 + len(query), 0) + query
                pseudo = src + dst + struct.pack("!BBH", 0, 17, len(l4))
                l4 = l4[:6] + struct.pack("!H", checksum(pseudo + l4) or 0xFFFF) + l4[8:]
                proto = 17
            else:
                l4 = struct.pack("!HHIIBBHHH", sport, a.port, isn, 0, 8 << 4, 0x02, 64240, 0, 0) + opts
                pseudo = src + dst + struct.pack("!BBH", 0, 6, len(l4))
                l4 = l4[:16] + struct.pack("!H", checksum(pseudo + l4)) + l4[18:]
                proto = 6
            tcp = l4
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            frame = eth + ip + tcp
            usec = i * 1_000_000 // a.pps
            out.append(struct.pack("<IIII", t0 + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
            out.append(frame)
            if len(out) >= 20000:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
