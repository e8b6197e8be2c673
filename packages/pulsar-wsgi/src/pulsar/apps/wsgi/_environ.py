"""The PEP 3333 environ of a request, ``wsgi.errors``, ``wsgi.file_wrapper``, proxy headers.

How it works
------------
:class:`EnvironBuilder` is made once per server from the configuration: it holds the keys that
are the same for every request (``wsgi.version``, ``SERVER_SOFTWARE``, ``SCRIPT_NAME``...) and the
trusted proxy networks. :meth:`EnvironBuilder.build` copies them and adds the request's keys.
Strings follow PEP 3333's "bytes as latin-1" rule: ``PATH_INFO`` is the percent-decoded path
decoded as latin-1, header values are latin-1.

Header names containing ``_`` are dropped (``X_Forwarded_For`` would otherwise collide with
``X-Forwarded-For`` in ``HTTP_X_FORWARDED_FOR``); repeated headers are joined with ``,`` (``;``
for ``Cookie``). Proxy headers (``Forwarded``, else ``X-Forwarded-For``/``-Proto``) change
``REMOTE_ADDR`` and ``wsgi.url_scheme`` only when the peer is a trusted proxy
(``forwarded_allow_ips``); the client is then the right-most address that is not trusted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from ._events import Request
from ._settings import HttpOptions, parse_allow_ips

__all__ = ["EnvironBuilder", "ErrorStream", "FileWrapper"]

error_logger = logging.getLogger("pulsar.wsgi.error")

_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
#: environ keys that need a second look: the Host header, the proxy headers
_NOTABLE = {
    "HTTP_HOST": b"host",
    "HTTP_FORWARDED": b"forwarded",
    "HTTP_X_FORWARDED_FOR": b"x-forwarded-for",
    "HTTP_X_FORWARDED_PROTO": b"x-forwarded-proto",
}
#: raw header name -> environ key ("" for names with "_", dropped); bounded, cleared when full
_HEADER_KEYS: dict[bytes, str] = {}


def _header_key(name: bytes) -> str:
    """The environ key of a request header name (``b"X-Id"`` -> ``"HTTP_X_ID"``), cached."""
    if b"_" in name:
        key = ""
    else:
        key = _SPECIAL.get(name.lower()) or "HTTP_" + name.decode("latin-1").upper().replace(
            "-", "_"
        )
    if len(_HEADER_KEYS) >= 2048:
        _HEADER_KEYS.clear()
    _HEADER_KEYS[name] = key
    return key


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the ``pulsar.wsgi.error`` logger."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        """Log complete lines at ERROR (a partial line waits for its end or :meth:`flush`)."""
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            error_logger.error("%s", line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            error_logger.error("%s", self._partial)
            self._partial = ""


class FileWrapper:
    """``wsgi.file_wrapper``: a file-like object returned as the response body.

    The server sends it with ``sendfile`` when the object is a regular file with ``fileno()`` and
    the transport allows it (plain TCP); otherwise it iterates it in ``block_size`` reads.
    ``close()`` closes the file-like object.
    """

    def __init__(self, filelike: Any, block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def fileno(self) -> int | None:
        """The file descriptor usable with ``sendfile``, or None."""
        try:
            fileno = self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fileno).st_mode):
                return None
        except OSError:
            return None
        return int(fileno)

    def remaining(self) -> tuple[int, int] | None:
        """``(offset, count)`` of what is left to send from the current position, or None."""
        fileno = self.fileno()
        if fileno is None:
            return None
        try:
            offset = int(self.filelike.tell())
            size = os.fstat(fileno).st_size
        except (AttributeError, OSError, ValueError):
            return None
        return offset, max(0, size - offset)

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.block_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        """Close the wrapped object (when it has a ``close``)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def _split_hostport(value: str, default_port: str) -> tuple[str, str]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else default_port
        return host, port or default_port
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        return host, port
    return value, default_port


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def _forwarded_for(value: str) -> str:
    """The address of a ``for=`` value (``"[::1]:80"`` -> ``::1``; obfuscated kept as is)."""
    value = _unquote(value)
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


class EnvironBuilder:
    """Builds the environ of each request from a request head (see the module docstring).

    Args:
        cfg: the server's :class:`pulsar.Config` (``root_path``, ``forwarded_allow_ips``,
            ``workers``, ``thread_workers``).
        server_software: the ``SERVER_SOFTWARE`` value.
    """

    def __init__(self, cfg: Any, server_software: str) -> None:
        options = cfg.view(HttpOptions)  # every default lives in its Setting
        self.root_path: str = options.root_path
        self.trust_all, self.networks = parse_allow_ips(options.forwarded_allow_ips)
        self._trust_cache: dict[str, bool] = {}
        #: connection_base's server keys by (sockname, scheme): copies of ``base``, on first use
        self._server_bases: dict[tuple[Any, str], dict[str, Any]] = {}
        self.base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": options.thread_workers > 0,
            "wsgi.multiprocess": options.workers > 1,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": server_software,
            "SCRIPT_NAME": self.root_path,
        }

    def trusted(self, address: str) -> bool:
        """Whether forwarded headers from ``address`` are honoured."""
        if self.trust_all:
            return True
        cached = self._trust_cache.get(address)
        if cached is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                cached = False
            else:
                cached = any(ip in net for net in self.networks)
            if len(self._trust_cache) < 1024:
                self._trust_cache[address] = cached
        return cached

    def connection_base(self, *, peer: Any, sockname: Any, scheme: str) -> dict[str, Any]:
        """The keys every request of one connection shares (the server's, the addresses and
        the scheme); :meth:`build` copies it. ``peer``/``sockname`` are the transport's
        addresses (a tuple for TCP, a string or None for unix sockets)."""
        key = (sockname, scheme)
        server = self._server_bases.get(key)
        if server is None:  # the server's keys, per listening address
            server = dict(self.base)
            if isinstance(sockname, tuple):
                server["SERVER_NAME"] = str(sockname[0])
                server["SERVER_PORT"] = str(sockname[1])
            server["wsgi.url_scheme"] = scheme
            if len(self._server_bases) > 64:
                self._server_bases.clear()
            self._server_bases[key] = server
        base = server.copy()
        if isinstance(peer, tuple):
            base["REMOTE_ADDR"] = str(peer[0])
            base["REMOTE_PORT"] = str(peer[1])
        else:
            base["REMOTE_ADDR"] = "127.0.0.1" if peer is None else str(peer or "127.0.0.1")
        base["wsgi.errors"] = ErrorStream()  # one per connection (its requests run in turn)
        return base

    def build(
        self,
        request: Request,
        body: Any,
        *,
        peer: Any = None,
        sockname: Any = None,
        scheme: str = "http",
        base: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The environ of ``request`` (``body`` becomes ``wsgi.input``).

        ``peer``/``sockname`` are the transport's addresses (a tuple for TCP, a string or None
        for unix sockets); ``scheme`` is ``http`` or ``https``. ``base``, the connection's
        :meth:`connection_base`, replaces the three (the protocol computes it once).
        """
        if base is None:
            base = self.connection_base(peer=peer, sockname=sockname, scheme=scheme)
        environ = base.copy()
        target = request.target
        raw_uri = target.decode("latin-1")
        path, sep, query = target.partition(b"?")
        if b"#" in path:
            path = path.partition(b"#")[0]
        authority: bytes | None = None
        if path[:1] != b"/" and b"://" in path:
            # absolute-form: the target's host replaces the Host header (RFC 9112 3.2.2)
            parts = path.split(b"/", 3)
            authority = parts[2].rpartition(b"@")[2]
            path = b"/" + parts[3] if len(parts) > 3 else b"/"
        if b"%" in path:
            path_info = unquote_to_bytes(path).decode("latin-1")
        elif path is target:  # the common case: the target is a plain path
            path_info = raw_uri
        else:
            path_info = path.decode("latin-1")
        root = self.root_path
        if root and (path_info == root or path_info.startswith(root + "/")):
            path_info = path_info[len(root) :]
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = path_info
        environ["QUERY_STRING"] = query.partition(b"#")[0].decode("latin-1") if sep else ""
        environ["RAW_URI"] = raw_uri
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version) or (
            "HTTP/" + request.http_version
        )
        environ["wsgi.input"] = body
        host_header: str | None = None
        forwarded: list[tuple[bytes, str]] | None = None
        keys = _HEADER_KEYS
        for name, raw in request.headers:
            key = keys.get(name)
            if key is None:
                key = _header_key(name)
            if not key:
                continue  # a name with "_"
            value = raw.decode("latin-1")
            if key in environ:
                sep_ = "; " if key == "HTTP_COOKIE" else ","
                environ[key] = environ[key] + sep_ + value
            else:
                environ[key] = value
            if key in _NOTABLE:
                if key == "HTTP_HOST":
                    host_header = value
                else:
                    if forwarded is None:
                        forwarded = []
                    forwarded.append((_NOTABLE[key], value))
        if authority is not None:
            host_header = environ["HTTP_HOST"] = authority.decode("latin-1")
        if request.chunked:
            environ.pop("CONTENT_LENGTH", None)
        if "SERVER_NAME" not in environ:  # a unix socket: the Host header tells
            default_port = "443" if environ["wsgi.url_scheme"] == "https" else "80"
            host, port = _split_hostport(host_header or "localhost", default_port)
            environ["SERVER_NAME"] = host
            environ["SERVER_PORT"] = port
        if forwarded and self.trusted(environ["REMOTE_ADDR"]):
            self._apply_forwarded(environ, dict(forwarded))
        return environ

    def _client(self, addresses: list[str]) -> str | None:
        """The right-most address that is not a trusted proxy (the left-most if all are)."""
        for address in reversed(addresses):
            if address and not self.trusted(address):
                return address
        return addresses[0] if addresses else None

    def _apply_forwarded(self, environ: dict[str, Any], headers: dict[bytes, str]) -> None:
        forwarded = headers.get(b"forwarded")
        addresses: list[str] = []
        protos: list[str] = []
        if forwarded is not None:
            for element in forwarded.split(","):
                pairs = {}
                for pair in element.split(";"):
                    key, sep, value = pair.partition("=")
                    if sep:
                        pairs[key.strip().lower()] = _unquote(value)
                if "for" in pairs:
                    addresses.append(_forwarded_for(pairs["for"]))
                if "proto" in pairs:
                    protos.append(pairs["proto"].lower())
        else:
            xff = headers.get(b"x-forwarded-for")
            if xff:
                addresses = [a.strip() for a in xff.split(",") if a.strip()]
            xfp = headers.get(b"x-forwarded-proto")
            if xfp:
                protos = [p.strip().lower() for p in xfp.split(",") if p.strip()]
        client = self._client(addresses)
        if client:
            environ["REMOTE_ADDR"] = client
            environ.pop("REMOTE_PORT", None)
        if protos and protos[-1] in ("http", "https"):
            environ["wsgi.url_scheme"] = protos[-1]


def server_software() -> str:
    """``pulsar-wsgi/<version> Python/<x.y>``."""
    from pulsar import __version__

    return f"pulsar-wsgi/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
