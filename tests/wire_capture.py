"""What crossed a link, read back: a packet capture on one interface of a network namespace, its
TCP streams put back together, and the TLS 1.3 inside them decrypted with the client's key log.

The capture is a raw ``AF_PACKET`` socket made inside the namespace (no tcpdump needed), read by
a thread of the test. TLS hides the payload from a capture, so a capture alone would show that a
text is absent even when it was sent; the clients here write their TLS secrets to a key log
(``SSLKEYLOGFILE``, which Python's ``ssl.create_default_context`` honours, as browsers and curl
do), and the streams are decrypted with them: a text that is absent from the decrypted streams,
while the texts that were meant to cross are present, never crossed.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .netns_util import Netns

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
Flow = tuple[str, int, str, int]  # source address, port, destination address, port


class Capture:
    """Every frame in and out of ``interface`` in ``ns`` from ``start`` to ``stop``."""

    def __init__(self, ns: Netns, interface: str = "eth0") -> None:
        self.ns = ns
        self.interface = interface
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Capture:
        self._sock = self.ns.call(self._open)
        self._thread = threading.Thread(target=self._read, name="wire-capture", daemon=True)
        self._thread.start()
        return self

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 1024 * 1024)
        sock.bind((self.interface, ETH_P_ALL))
        sock.settimeout(0.2)
        return sock

    def _read(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                self.frames.append(self._sock.recv(262144))
            except TimeoutError:
                continue
            except OSError as exc:  # the link was taken down: the socket reports it once, then reads on
                if exc.errno != errno.ENETDOWN:
                    raise

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def raw(self) -> bytes:
        return b"".join(self.frames)

    def streams(self) -> dict[Flow, bytes]:
        return tcp_streams(self.frames)


def tcp_streams(frames: list[bytes]) -> dict[Flow, bytes]:
    """Each direction of each TCP connection whose SYN was seen, as the bytes it carried in
    order (retransmissions counted once; a stream stops at its first missing byte)."""
    segments: dict[Flow, dict[int, bytes]] = defaultdict(dict)
    first: dict[Flow, int] = {}
    for frame in frames:
        if frame[12:14] != b"\x08\x00":  # IPv4 only: the namespaces have no IPv6 routes
            continue
        ip = frame[14:]
        header, total = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big") or len(ip)
        if ip[9] != socket.IPPROTO_TCP:
            continue
        tcp = ip[header:total]
        flow = (
            socket.inet_ntoa(ip[12:16]),
            int.from_bytes(tcp[0:2], "big"),
            socket.inet_ntoa(ip[16:20]),
            int.from_bytes(tcp[2:4], "big"),
        )
        seq = int.from_bytes(tcp[4:8], "big")
        if tcp[13] & 0x02:  # SYN: data starts after it
            first[flow] = (seq + 1) & 0xFFFFFFFF
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload and len(payload) > len(segments[flow].get(seq, b"")):
            segments[flow][seq] = payload
    streams = {}
    for flow, start in first.items():
        data = bytearray()
        for offset, payload in sorted(((seq - start) & 0xFFFFFFFF, p) for seq, p in segments[flow].items()):
            if offset > len(data):
                break
            data += payload[len(data) - offset :]
        streams[flow] = bytes(data)
    return streams


# -- TLS 1.3 -----------------------------------------------------------------------------------

SUITES: dict[int, tuple[Callable[[bytes], Any], int, hashes.HashAlgorithm]] = {
    0x1301: (AESGCM, 16, hashes.SHA256()),
    0x1302: (AESGCM, 32, hashes.SHA384()),
    0x1303: (ChaCha20Poly1305, 32, hashes.SHA256()),
}


def read_keylog(*paths: Path) -> dict[bytes, dict[str, bytes]]:
    """``SSLKEYLOGFILE`` lines (LABEL client_random secret) by client random, then label."""
    found: dict[bytes, dict[str, bytes]] = defaultdict(dict)
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and not line.startswith("#"):
                found[bytes.fromhex(parts[1])][parts[0]] = bytes.fromhex(parts[2])
    return found


def _records(stream: bytes) -> list[tuple[int, bytes, bytes]]:
    """(content type, 5-byte header, body) of each whole TLS record in ``stream``."""
    records, at = [], 0
    while at + 5 <= len(stream):
        length = int.from_bytes(stream[at + 3 : at + 5], "big")
        if at + 5 + length > len(stream):
            break
        records.append((stream[at], stream[at : at + 5], stream[at + 5 : at + 5 + length]))
        at += 5 + length
    return records


def _expand_label(secret: bytes, label: bytes, length: int, hash_: hashes.HashAlgorithm) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hash_, length, info).derive(secret)


@dataclass
class _Keys:
    cipher: Any
    iv: bytes
    seq: int = 0

    def open(self, header: bytes, body: bytes) -> bytes:
        nonce = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big"), strict=True))
        plain = bytes(self.cipher.decrypt(nonce, body, header))
        self.seq += 1
        return plain


@dataclass
class Connection:
    """One TLS connection's application data, each direction decrypted."""

    flow: Flow
    sent: bytes  # client to server
    received: bytes  # server to client


def decrypt(
    client_to_server: bytes, server_to_client: bytes, keylog: dict[bytes, dict[str, bytes]]
) -> tuple[bytes, bytes]:
    """The application data of a TLS 1.3 connection, each direction, with the client's key log.
    Raises ValueError when it is not TLS 1.3 or its secrets are not in the key log."""
    client, server = _records(client_to_server), _records(server_to_client)
    if not client or client[0][0] != 22 or not server or server[0][0] != 22:
        raise ValueError("not a TLS connection (no handshake record first)")
    client_random = client[0][2][6:38]  # handshake type, length (3), legacy version (2), random
    hello = server[0][2]
    session_id = hello[38]
    suite = int.from_bytes(hello[39 + session_id : 41 + session_id], "big")
    secrets = keylog.get(client_random)
    if secrets is None or suite not in SUITES:
        raise ValueError(f"no TLS 1.3 secrets in the key log for this connection (suite {suite:#06x})")
    make, size, hash_ = SUITES[suite]

    def keys(label: str) -> _Keys:
        secret = secrets[label]
        return _Keys(
            make(_expand_label(secret, b"key", size, hash_)), _expand_label(secret, b"iv", 12, hash_)
        )

    def direction(records: list[tuple[int, bytes, bytes]], side: str) -> bytes:
        stages = [keys(f"{side}_HANDSHAKE_TRAFFIC_SECRET"), keys(f"{side}_TRAFFIC_SECRET_0")]
        data = bytearray()
        for kind, header, body in records:
            if kind != 23:  # the handshake before encryption, ChangeCipherSpec for middleboxes
                continue
            while True:
                try:
                    plain = stages[0].open(header, body).rstrip(b"\x00")
                    break
                except InvalidTag:
                    if len(stages) == 1:
                        raise ValueError(f"{side}: a record no key of the key log opens") from None
                    stages.pop(0)  # the handshake is over: the traffic keys from here
            if plain[-1] == 23:
                data += plain[:-1]
        return bytes(data)

    return direction(client, "CLIENT"), direction(server, "SERVER")


def tls_connections(
    streams: dict[Flow, bytes], server_port: int, keylog: dict[bytes, dict[str, bytes]]
) -> list[Connection]:
    """Every captured connection to ``server_port`` that carried data, decrypted; ValueError for
    one that cannot be (a connection that never got past its SYN carried nothing)."""
    found = []
    for flow, sent in streams.items():
        if flow[3] != server_port or not sent:
            continue
        received = streams.get((flow[2], flow[3], flow[0], flow[1]), b"")
        plain_sent, plain_received = decrypt(sent, received, keylog)
        found.append(Connection(flow, plain_sent, plain_received))
    return found
