#!/usr/bin/python3
"""Prints a loopback port above 1024 that is free for both TCP and UDP (for bench/*.sh)."""
import socket

for _ in range(50):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    u.close()
    t.close()
    if port > 1024:
        print(port)
        break
else:
    raise SystemExit("no free port")
