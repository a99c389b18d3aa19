#!/usr/bin/env python3
"""A capture of TLS 1.2 connections whose servers each send a distinct chain:
the cost of chain validation when nothing is cached (see the README's
Development section).

    gen_chains.py -o chains.pcap -n 1000 [--repeat R] [--root root.pem]

N leaves (ECDSA P-256, `srvI.chains.example`) signed by one intermediate signed
by one root; each connection: handshake, ClientHello, ServerHello + Certificate
(leaf, intermediate) + ServerHelloDone, ChangeCipherSpec both ways, FIN both
ways. `--repeat R` sends every chain R times (N*R connections). The root is
written to `--root` (default: beside the capture, `.root.pem`) so that
`tlswatch --ca-file` can trust it and every chain is validated all the way.
Needs python3 `cryptography`.
"""
import argparse
import datetime
import os
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

T0 = 1_796_000_000  # 2026-12-01


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(cn, key, issuer_cn, issuer_key, ca):
    now = datetime.datetime.fromtimestamp(T0, datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(issuer_cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=30))
         .not_valid_after(now + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def der(c):
    return c.public_bytes(serialization.Encoding.DER)


def u24(n):
    return struct.pack(">I", n)[1:]


def handshake(kind, body):
    msg = bytes([kind]) + u24(len(body)) + body
    return b"\x16\x03\x03" + struct.pack(">H", len(msg)) + msg


def client_hello(sni):
    host = sni.encode()
    sni_ext = struct.pack(">HHHBH", 0, len(host) + 5, len(host) + 3, 0, len(host)) + host
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x04\xc0\x2b\xc0\x2f" + b"\x01\x00"
            + struct.pack(">H", len(sni_ext)) + sni_ext)
    return handshake(1, body)


def server_flight(chain):
    sh = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\xc0\x2b" + b"\x00" + b"\x00\x05\xff\x01\x00\x01\x00"
    certs = b"".join(u24(len(c)) + c for c in chain)
    return (handshake(2, sh) + handshake(11, u24(len(certs)) + certs) + handshake(14, b""))


CCS = b"\x14\x03\x03\x00\x01\x01"


class Pcap:
    def __init__(self, path):
        self.fh = open(path, "wb")
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        self.t = T0

    def packet(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0, src, dst)
        data = ip + tcp + payload
        self.t += 0.0001
        sec = int(self.t)
        self.fh.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(data), len(data)))
        self.fh.write(data)

    def conn(self, i, hello, flight):
        c = bytes([10, 1, (i >> 8) & 255, i & 255])
        s = bytes([10, 2, (i >> 16) & 255, (i >> 8) & 255 | 1])
        cp, sp = 10000 + i % 50000, 443
        cs, ss = 1000, 5000
        self.packet(c, s, cp, sp, cs, 0, 0x02)
        self.packet(s, c, sp, cp, ss, cs + 1, 0x12)
        cs += 1
        ss += 1
        self.packet(c, s, cp, sp, cs, ss, 0x10)
        for who, data in (("c", hello), ("s", flight), ("c", CCS), ("s", CCS)):
            for off in range(0, len(data), 1400):
                seg = data[off:off + 1400]
                if who == "c":
                    self.packet(c, s, cp, sp, cs, ss, 0x18, seg)
                    cs += len(seg)
                else:
                    self.packet(s, c, sp, cp, ss, cs, 0x18, seg)
                    ss += len(seg)
        self.packet(c, s, cp, sp, cs, ss, 0x11)
        self.packet(s, c, sp, cp, ss, cs + 1, 0x11)
        self.packet(c, s, cp, sp, cs + 1, ss + 1, 0x10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--root")
    a = ap.parse_args()
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = cert("chains bench root", root_key, "chains bench root", root_key, True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = cert("chains bench intermediate", inter_key, "chains bench root", root_key, True)
    with open(a.root or a.o + ".root.pem", "wb") as fh:
        fh.write(root.public_bytes(serialization.Encoding.PEM))
    leaves = []
    for i in range(a.n):
        k = ec.generate_private_key(ec.SECP256R1())
        cn = f"srv{i}.chains.example"
        leaves.append((cn, der(cert(cn, k, "chains bench intermediate", inter_key, False))))
    p = Pcap(a.o)
    n = 0
    for _ in range(a.repeat):
        for cn, leaf in leaves:
            p.conn(n, client_hello(cn), server_flight([leaf, der(inter)]))
            n += 1
    p.fh.close()
    print(f"wrote {a.o}: {n} connections, {a.n} distinct chains")


if __name__ == "__main__":
    main()
