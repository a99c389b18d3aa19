#!/usr/bin/env python3
"""A QUIC Initial flood capture: N client Initials (QUIC v1) from distinct sources to UDP 443.

    python3 bench/gen_quic_flood.py -n 1000000 -o /tmp/quic-flood.pcap [--port 443] [--pps 100000]

Every Initial comes from its own address in 10.0.0.0/8 (then 172.16.0.0/12, ...), with a
pseudo-random source port (seeded, so the file is the same every time), at `--pps`
packets per second of packet time, in a 1200-byte UDP payload as a client pads it
(RFC 9000 §14.1): a long header, version 1, a random 8-byte Destination Connection ID
and Source Connection ID, no token. Nothing ever answers.

Each Initial is really protected with the Initial keys of its own Destination
Connection ID (RFC 9001 §5) and carries the first Initial of `fixtures/udp/quic_split.pcap`:
a CRYPTO frame with the first part of a ClientHello too large for one packet, whose
rest is never sent (the ClientHello random differs in each). So every conversation is
taken for QUIC, opens its Initial, and holds a partial CRYPTO stream until it ends.

Protection needs the `cryptography` package (AES-GCM and AES for header protection;
the key derivation is the standard library's HMAC). Without it, or with
`--unprotected`, the header is the same but the payload is random bytes: the
conversations are still taken for QUIC (a long header of a known version towards
port 443), but hold no CRYPTO data. Ethernet and IPv4 checksums are valid; the UDP
checksum is zero (none, which IPv4 allows).
"""

import argparse
import hashlib
import hmac
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(os.path.dirname(HERE), "fixtures", "udp", "quic_split.pcap")
V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
DATAGRAM = 1200
TAG = 16


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def expand_label(secret, label, length):
    """HKDF-Expand-Label (RFC 8446 §7.1), empty context; at most one SHA-256 block."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\0"
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def client_keys(dcid):
    """The client's Initial key, IV and header protection key for `dcid` (RFC 9001 §5.2)."""
    initial = hmac.new(V1_SALT, dcid, hashlib.sha256).digest()
    secret = expand_label(initial, b"client in", 32)
    return (
        expand_label(secret, b"quic key", 16),
        expand_label(secret, b"quic iv", 12),
        expand_label(secret, b"quic hp", 16),
    )


def varint(b):
    """A QUIC variable-length integer at the start of `b`: (value, its length)."""
    n = 1 << (b[0] >> 6)
    v = b[0] & 0x3F
    for x in b[1:n]:
        v = v << 8 | x
    return v, n


class Protector:
    """Seals and masks Initial packets (needs `cryptography`)."""

    def __init__(self):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.aesgcm = AESGCM
        self.ecb = lambda k: Cipher(algorithms.AES(k), modes.ECB()).encryptor()

    def open(self, pkt):
        """Unprotects a client Initial (the template); returns its plaintext payload."""
        dlen = pkt[5]
        dcid = pkt[6:6 + dlen]
        at = 6 + dlen
        at += 1 + pkt[at]
        tlen, n = varint(pkt[at:])
        at += n + tlen
        length, n = varint(pkt[at:])
        pn_at = at + n
        key, iv, hp = client_keys(dcid)
        mask = self.ecb(hp).update(pkt[pn_at + 4:pn_at + 20])
        first = pkt[0] ^ (mask[0] & 0x0F)
        pn_len = (first & 3) + 1
        pn_bytes = bytes(b ^ m for b, m in zip(pkt[pn_at:pn_at + pn_len], mask[1:]))
        header = bytes([first]) + pkt[1:pn_at] + pn_bytes
        pn = int.from_bytes(pn_bytes, "big")
        nonce = iv[:-8] + (int.from_bytes(iv[-8:], "big") ^ pn).to_bytes(8, "big")
        body = pkt[pn_at + pn_len:pn_at + length]
        return self.aesgcm(key).decrypt(nonce, body, header)

    def seal(self, dcid, header, pn_len, plain):
        """Seals `plain` after `header` (packet number 0, `pn_len` bytes), then masks."""
        key, iv, hp = client_keys(dcid)
        sealed = self.aesgcm(key).encrypt(iv, plain, header)
        pn_at = len(header) - pn_len
        sample = sealed[4 - pn_len:20 - pn_len]
        mask = self.ecb(hp).update(sample)
        out = bytearray(header + sealed)
        out[0] ^= mask[0] & 0x0F
        for i in range(pn_len):
            out[pn_at + i] ^= mask[1 + i]
        return bytes(out)


def template_plaintext(protector):
    """The frames of the first client Initial of the split-ClientHello fixture, without
    its padding, and where the ClientHello random lies in them."""
    with open(TEMPLATE, "rb") as f:
        data = f.read()
    incl = struct.unpack("<I", data[32:36])[0]
    frame = data[40:40 + incl]
    ihl = (frame[14] & 0x0F) * 4
    plain = protector.open(frame[14 + ihl + 8:]).rstrip(b"\0")
    # A CRYPTO frame at offset 0 opens the payload: type, offset, length, then the
    # ClientHello's 4-byte header and legacy_version before its random.
    if plain[0] != 0x06 or plain[1] != 0:
        sys.exit("%s: the first client Initial does not open with CRYPTO at 0" % TEMPLATE)
    _, n = varint(plain[2:])
    return plain, 2 + n + 4 + 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="number of Initials")
    ap.add_argument("-o", required=True, help="output pcap")
    ap.add_argument("--port", type=int, default=443, help="destination port")
    ap.add_argument("--pps", type=int, default=100_000, help="packets per second (packet time)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--unprotected", action="store_true", help="random payloads, no CRYPTO data")
    a = ap.parse_args()
    protector = None
    if not a.unprotected:
        try:
            protector = Protector()
        except ImportError:
            print("gen_quic_flood: no `cryptography` module: payloads are random bytes", file=sys.stderr)
    plain, random_at = template_plaintext(protector) if protector else (b"", 0)
    rnd = random.Random(a.seed)
    dst = bytes([192, 0, 2, 1])
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    pn_len = 2
    t0 = 1_700_000_000
    with open(a.o, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out = []
        for i in range(a.n):
            src = struct.pack("!I", 0x0A000000 + 1 + i)
            sport = 1024 + rnd.randrange(64511)
            dcid = rnd.getrandbits(64).to_bytes(8, "big")
            scid = rnd.getrandbits(64).to_bytes(8, "big")
            # Long header, Initial, 2-byte packet number 0; Length a 2-byte varint.
            head = b"\xc1" + struct.pack("!I", 1) + b"\x08" + dcid + b"\x08" + scid + b"\x00"
            body_len = DATAGRAM - len(head) - 2 - pn_len
            header = head + struct.pack("!H", 0x4000 | (pn_len + body_len)) + b"\0" * pn_len
            if protector:
                hello = plain[:random_at] + rnd.getrandbits(256).to_bytes(32, "big") + plain[random_at + 32:]
                padded = hello + b"\0" * (body_len - TAG - len(hello))
                payload = protector.seal(dcid, header, pn_len, padded)
            else:
                payload = header + rnd.getrandbits(8 * body_len).to_bytes(body_len, "big")
            l4 = struct.pack("!HHHH", sport, a.port, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), i & 0xFFFF, 0x4000, 64, 17, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            frame = eth + ip + l4
            usec = i * 1_000_000 // a.pps
            out.append(struct.pack("<IIII", t0 + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
            out.append(frame)
            if len(out) >= 20000:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
