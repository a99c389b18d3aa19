#!/usr/bin/env python3
"""Writes a fragment flood: N IPv4 first fragments (more-fragments set) of N
different datagrams that never complete, spread over a few seconds of packet time
(inside the reassembly timeout, so only the caps bound memory).

Usage: bench/frag_flood.py OUT.pcap [N=1000000] [PAYLOAD=200]
"""

import struct
import sys


def main():
    out_path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    size -= size % 8
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
    rec = struct.Struct("<IIII")
    with open(out_path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            src = bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + size, i & 0xFFFF, 0x2000, 64, 6, 0,
                             src, bytes([192, 0, 2, 1]))
            frame = eth + ip + payload
            usec = i * 5  # 1M fragments over 5 s
            out.write(rec.pack(1_700_000_000 + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
            out.write(frame)


if __name__ == "__main__":
    main()
