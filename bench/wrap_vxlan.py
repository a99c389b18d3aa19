#!/usr/bin/env python3
"""Wraps every Ethernet frame of a classic pcap in VXLAN (outer Ethernet, IPv4, UDP
4789, VNI 100), as a cloud traffic mirror would deliver it, for the tunnel benchmark.

Usage: bench/wrap_vxlan.py IN.pcap OUT.pcap

The outer IPv4 addresses are two VTEPs, swapped by direction (the inner packet's
lower address sends from 10.255.0.1); the outer UDP source port varies by inner flow,
as VTEPs hash it. Timestamps are kept.
"""

import struct
import zlib
import sys

OUTER_ETH = bytes.fromhex("02000000aa0102000000aa020800")
VTEP_A = bytes([10, 255, 0, 1])
VTEP_B = bytes([10, 255, 0, 2])
VXLAN = bytes([0x08, 0, 0, 0]) + struct.pack(">I", 100 << 8)


def inner_addrs(frame):
    """Source and destination bytes of the inner IP header (or b'' for non-IP)."""
    et = frame[12:14]
    if et == b"\x08\x00":
        return frame[26:30], frame[30:34]
    if et == b"\x86\xdd":
        return frame[22:38], frame[38:54]
    return b"", b""


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f, open(dst, "wb") as out:
        hdr = f.read(24)
        magic = hdr[:4]
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            sys.exit("only little-endian classic pcap")
        linktype = struct.unpack("<I", hdr[20:24])[0]
        if linktype != 1:
            sys.exit("only Ethernet")
        out.write(hdr[:16] + struct.pack("<I", 262144) + hdr[20:24])
        rec = struct.Struct("<IIII")
        ident = 0
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, sub, incl, orig = rec.unpack(h)
            frame = f.read(incl)
            s, d = inner_addrs(frame)
            fwd = s <= d
            sport = 49152 + (zlib.crc32(s + d if fwd else d + s) & 0x3FFF)
            udp_len = 8 + len(VXLAN) + incl
            ip_len = 20 + udp_len
            ident = (ident + 1) & 0xFFFF
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, ip_len, ident, 0x4000, 64, 17, 0,
                             VTEP_A if fwd else VTEP_B, VTEP_B if fwd else VTEP_A)
            udp = struct.pack(">HHHH", sport, 4789, udp_len, 0)
            extra = len(OUTER_ETH) + 20 + 8 + len(VXLAN)
            out.write(rec.pack(sec, sub, incl + extra, orig + extra))
            out.write(OUTER_ETH)
            out.write(ip)
            out.write(udp)
            out.write(VXLAN)
            out.write(frame)


if __name__ == "__main__":
    main()
