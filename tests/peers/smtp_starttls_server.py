#!/usr/bin/env python3
"""A one-connection SMTP server that offers and accepts STARTTLS, for the live-capture test.

usage: smtp_starttls_server.py PORT CERT KEY
"""
import socket
import ssl
import sys

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(10)


def read_line():
    buf = b""
    while not buf.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        buf += b
    return buf


conn.sendall(b"220 live.test ESMTP\r\n")
while True:
    line = read_line().strip().upper()
    if not line:
        sys.exit(0)
    if line.startswith(b"EHLO"):
        conn.sendall(b"250-live.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
    elif line == b"STARTTLS":
        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        break
    else:
        conn.sendall(b"250 ok\r\n")
tls = ctx.wrap_socket(conn, server_side=True)
try:
    tls.sendall(b"220 live.test ESMTP\r\n")
    tls.recv(1024)
except (ssl.SSLError, OSError):
    pass
tls.close()
