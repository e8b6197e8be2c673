"""Protocols and helpers for test_socket.py, importable by name in spawn/forkserver children."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from typing import Any


class EchoProtocol(asyncio.Protocol):
    """Echoes every chunk. ``pid?`` answers the worker's pid; ``sleep:S`` answers ``slept``
    after S seconds (an exchange in flight)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data == b"pid?":
            self.transport.write(f"{os.getpid()}\n".encode())
        elif data.startswith(b"sleep:"):
            delay = float(data[6:])
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._slept)
        else:
            self.transport.write(data)

    def _slept(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(b"slept\n")

    def connection_lost(self, exc: Exception | None) -> None:
        pass


class UdpEcho(asyncio.DatagramProtocol):
    """Echoes every datagram, prefixed with the worker's pid: ``<pid>:<data>``."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(f"{os.getpid()}:".encode() + data, addr)


def nodelay_of_connections(actor: Any) -> list[int]:
    """``run`` command: TCP_NODELAY of every open connection of this worker's server."""
    out = []
    for conn in actor.extra["server"].connections:
        sock = conn.transport.get_extra_info("socket")
        out.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return out


def split_address(address: str) -> tuple[str, int]:
    """``'127.0.0.1:80'`` / ``'[::1]:80'`` -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def open_connection(address: str, **kwargs: Any) -> tuple[Any, Any]:
    """asyncio.open_connection to a bound address (``unix:`` included)."""
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address[5:], **kwargs)
    host, port = split_address(address)
    return await asyncio.open_connection(host, port, **kwargs)


async def echo(address: str, payload: bytes = b"hello", **kwargs: Any) -> bytes:
    """One connection, one exchange."""
    reader, writer = await open_connection(address, **kwargs)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))  # type: ignore[no-any-return]
    finally:
        writer.close()


async def served_by(address: str, **kwargs: Any) -> int:
    """The pid of the worker that serves a new connection."""
    reader, writer = await open_connection(address, **kwargs)
    try:
        writer.write(b"pid?")
        return int(await reader.readline())
    finally:
        writer.close()


def make_cert(directory: str) -> tuple[str, str] | None:
    """A self-signed certificate for localhost/127.0.0.1 (openssl CLI, else cryptography)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if shutil.which("openssl"):
        result = subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            capture_output=True,
        )  # fmt: skip
        if result.returncode == 0:
            return cert, key
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(pkey, hashes.SHA256())
    )
    with open(cert, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(
            pkey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert, key


def client_ssl(cert: str) -> ssl.SSLContext:
    """A client context trusting ``cert``."""
    return ssl.create_default_context(cafile=cert)
