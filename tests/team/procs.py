"""Process and port helpers of the team tests."""
from __future__ import annotations

import socket
from pathlib import Path


def port_free(port: int) -> bool:
    "Nothing listens on `port` and a new server could bind it (connections of closed clients may linger in TIME_WAIT)."
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def group_processes(pgid: int) -> list[int]:
    "Pids of the live (non-zombie) processes of process group `pgid`."
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and fields[2] == str(pgid):
                out.append(int(entry.name))
    return out
