"""Nothing the world starts listens beyond loopback."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo

pytestmark = pytest.mark.local_world("world-processes")

WORLD_PROCESSES = (
    "etcd",
    "kube-apiserver",
    "kube-controller",
    "kube-scheduler",
    "kwok",
    "prometheus",
    "python",
)


def _listening_inodes() -> dict[int, str]:
    """inode -> local address of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out: dict[int, str] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            addr_hex, port_hex = parts[1].split(":")
            raw = bytes.fromhex(addr_hex)
            if family == socket.AF_INET:
                addr = socket.inet_ntop(family, struct.pack("<I", struct.unpack(">I", raw)[0]))
            else:
                words = struct.unpack(">4I", raw)
                addr = socket.inet_ntop(family, struct.pack("<4I", *words))
            out[int(parts[9])] = f"{addr}:{int(port_hex, 16)}"
    return out


def _is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0]
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def test_every_world_listener_is_on_loopback(world: WorldInfo) -> None:
    listening = _listening_inodes()
    seen: list[tuple[str, str]] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        if not comm.startswith(WORLD_PROCESSES):
            continue
        for fd in fds:
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in listening:
                    seen.append((comm, listening[inode]))
    names = {c for c, _ in seen}
    assert {"etcd", "kube-apiserver", "prometheus"} <= names, seen
    offenders = [(c, a) for c, a in seen if not _is_loopback(a)]
    assert offenders == [], f"listening beyond loopback: {offenders}"
