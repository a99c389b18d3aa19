#!/usr/bin/env python3
"""Build a QUIC benchmark capture from the recorded UDP fixtures.

    make_quic_bench.py -o /tmp/quic-bench.pcap [--copies 5000] [FIXTURE.pcap ...]

Each copy of each fixture (default: every fixtures/udp/quic_*.pcap) becomes its own
conversation: the client's IPv4 address is rewritten to a fresh 10.x.y.z (the IP
header checksum recomputed, the UDP checksum zeroed, which IPv4 allows) and the
packet times shifted so copies follow one another. Every conversation is a full
QUIC handshake (Initial packets both ways, Handshake and 1-RTT packets), so
`tlswatch -r` on the result measures QUIC flows per second: Initial decryption,
CRYPTO reassembly and hello parsing, and bypass of the short-header packets.
Prints the number of conversations and packets written.
"""
import argparse
import glob
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures", "udp")


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    if magic != 0xA1B2C3D4 or linktype != 1:
        sys.exit("%s: want a little-endian microsecond Ethernet pcap" % path)
    at, pkts = 24, []
    while at + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[at:at + 16])
        pkts.append((sec + usec / 1e6, data[at + 16:at + 16 + incl]))
        at += 16 + incl
    return pkts


def checksum(hdr):
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def rewrite(frame, client_ip, new_ip):
    """Replaces client_ip by new_ip in an Ethernet/IPv4/UDP frame."""
    f = bytearray(frame)
    ip = 14
    if f[12:14] != b"\x08\x00":
        return bytes(f)
    ihl = (f[ip] & 0x0F) * 4
    for off in (ip + 12, ip + 16):
        if f[off:off + 4] == client_ip:
            f[off:off + 4] = new_ip
    f[ip + 10:ip + 12] = b"\0\0"
    f[ip + 10:ip + 12] = struct.pack("!H", checksum(bytes(f[ip:ip + ihl])))
    if f[ip + 9] == 17:
        f[ip + ihl + 6:ip + ihl + 8] = b"\0\0"
    return bytes(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--copies", type=int, default=5000)
    p.add_argument("fixtures", nargs="*")
    a = p.parse_args()
    files = a.fixtures or sorted(glob.glob(os.path.join(FIXTURES, "quic_*.pcap")))
    sources = []
    for path in files:
        pkts = read_pcap(path)
        first = pkts[0][1]
        client_ip = first[14 + 12:14 + 16]
        t0 = pkts[0][0]
        sources.append([(t - t0, fr) for t, fr in pkts] + [client_ip])
    n_conv = n_pkts = 0
    t = 1_800_000_000.0
    with open(a.output, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i in range(a.copies):
            for src in sources:
                client_ip = src[-1]
                n = n_conv + 1
                new_ip = bytes([10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
                for dt, fr in src[:-1]:
                    fr = rewrite(fr, client_ip, new_ip)
                    ts = t + dt
                    sec = int(ts)
                    usec = int(round((ts - sec) * 1e6))
                    out.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)))
                    out.write(fr)
                    n_pkts += 1
                n_conv += 1
                t += 0.001
    print("%d QUIC conversations, %d packets -> %s" % (n_conv, n_pkts, a.output))


if __name__ == "__main__":
    main()
