"""The settings of the WSGI server (``app = "wsgi"``), declared once (see :class:`pulsar.Setting`).

Importing :mod:`pulsar.apps.wsgi` registers them; a :class:`pulsar.Config` built with
``apps=("wsgi",)`` has them besides the core settings. The core ``keep_alive`` (idle seconds of a
keep-alive connection, 0 disables keep-alive) and ``access_log`` settings apply as they are;
``thread_workers`` gets a WSGI default and accepts 0 (run the application on the event loop).
Regenerate ``docs/settings.md`` after a change: ``hatch run python tools/gen_settings_doc.py``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pulsar import Setting
from pulsar.validators import (
    declare_app,
    validate_non_negative_int,
    validate_non_negative_number,
    validate_string,
)

__all__ = [
    "DEFAULT_ACCESS_LOG_FORMAT",
    "HTTP",
    "HttpOptions",
    "parse_allow_ips",
    "validate_allow_ips",
]

HTTP = "HTTP"
# a WSGI config has the server settings too (bind, TLS, keep_alive, access_log, max_requests)
declare_app("wsgi", requires=("socket",))
DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def parse_allow_ips(
    value: str,
) -> tuple[bool, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
    """``(trust_all, networks)`` of a ``forwarded_allow_ips`` value (validated beforehand)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if "*" in items:
        return True, ()
    return False, tuple(ipaddress.ip_network(item, strict=False) for item in items)


def validate_allow_ips(value: Any) -> str:
    """A comma-separated list of IP addresses or networks (CIDR), or ``*``; normalised."""
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = validate_string(value)
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
    return ",".join(items)


def validate_root_path(value: Any) -> str:
    """``""`` or a path starting with ``/`` and not ending with one."""
    text = validate_string(value or "").strip()
    if text and not text.startswith("/"):
        raise ValueError("must start with '/'")
    return text.rstrip("/")


class ThreadWorkers(Setting):
    name = "thread_workers"
    app = "wsgi"
    override = True
    section = "Worker Processes"
    flags = ["--thread-workers"]
    meta = "INT"
    default = 8
    validator = validate_non_negative_int
    desc = "Threads running the WSGI callable in each worker; 0 runs it inline on the event loop."
    doc = """
        Blocking applications (databases, files, sleeping) are the norm, so by default the
        callable runs in a pool of this many threads per worker and the worker's loop stays free
        to read and write other connections. With `0` the callable runs on the event loop
        itself: fastest, for applications that never block (the request body is then read
        completely before the callable is called). This is the `wsgi` application's version of
        the core setting (whose default, 4, applies to the other applications).
        """


class LimitRequestLine(Setting):
    name = "limit_request_line"
    app = "wsgi"
    section = HTTP
    flags = ["--limit-request-line"]
    meta = "BYTES"
    default = 8190
    validator = validate_non_negative_int
    desc = "Maximum size of the request target in bytes (414 beyond); 0: no limit."


class LimitRequestFields(Setting):
    name = "limit_request_fields"
    app = "wsgi"
    section = HTTP
    flags = ["--limit-request-fields"]
    meta = "INT"
    default = 100
    validator = validate_non_negative_int
    desc = "Maximum number of header fields in a request (431 beyond); 0: no limit."


class LimitRequestFieldSize(Setting):
    name = "limit_request_field_size"
    app = "wsgi"
    section = HTTP
    flags = ["--limit-request-field-size"]
    meta = "BYTES"
    default = 8190
    validator = validate_non_negative_int
    desc = "Maximum size of one request header field, name and value (431 beyond); 0: no limit."


class MaxBodySize(Setting):
    name = "max_body_size"
    app = "wsgi"
    section = HTTP
    flags = ["--max-body-size"]
    meta = "BYTES"
    default = 16 * 1024 * 1024
    default_doc = "`16777216` (16 MiB)"
    validator = validate_non_negative_int
    desc = "Largest request body accepted, in bytes (413 beyond); 0: no limit."
    doc = """
        A declared `Content-Length` above the limit is refused before any body byte is read;
        a chunked body is refused when it grows past it.
        """


class HeaderTimeout(Setting):
    name = "header_timeout"
    app = "wsgi"
    section = HTTP
    flags = ["--header-timeout"]
    meta = "SECONDS"
    default = 20
    validator = validate_non_negative_number
    desc = "Deadline to receive a request's line and headers, from its first byte; 0: none."
    doc = """
        Cuts off clients that trickle their headers (slowloris). A new connection must send
        its first request head within this deadline too; between requests, `keep_alive`
        applies.
        """


class BodyTimeout(Setting):
    name = "body_timeout"
    app = "wsgi"
    section = HTTP
    flags = ["--body-timeout"]
    meta = "SECONDS"
    default = 30
    validator = validate_non_negative_number
    desc = (
        "Seconds a request body may stall (no byte received) before the connection is cut; 0: none."
    )


class ForwardedAllowIps(Setting):
    name = "forwarded_allow_ips"
    app = "wsgi"
    section = HTTP
    flags = ["--forwarded-allow-ips"]
    meta = "IPS"
    default = "127.0.0.1,::1"
    validator = validate_allow_ips
    desc = "Proxies (IPs or CIDR networks, comma-separated, or '*') trusted for forwarded headers."
    doc = """
        Requests from these addresses may set the client address and scheme with
        `Forwarded` (RFC 7239) or `X-Forwarded-For` / `X-Forwarded-Proto`; those headers are
        ignored from anyone else. The client is the right-most address not in this list.
        """


class RootPath(Setting):
    name = "root_path"
    app = "wsgi"
    section = HTTP
    flags = ["--root-path"]
    meta = "PATH"
    default = ""
    validator = validate_root_path
    desc = "SCRIPT_NAME of the application when it is mounted below a path prefix (e.g. /api)."


class AccessLogFormat(Setting):
    name = "access_log_format"
    app = "wsgi"
    section = HTTP
    flags = ["--access-log-format"]
    meta = "FORMAT"
    default = DEFAULT_ACCESS_LOG_FORMAT
    validator = validate_string
    desc = "Format of the access log lines (gunicorn's fields: h, r, s, b, T, D, {header}i...)."
    doc = """
        Fields: `h` remote address, `l` `-`, `u` user (basic auth), `t` time, `r` request
        line, `m` method, `U` path, `q` query, `H` protocol, `s` status, `b`/`B` response
        body bytes (`-`/`0` when none), `f` referer, `a` user agent, `T`/`M`/`D`/`L` duration in
        seconds/milliseconds/microseconds/decimal seconds, `p` pid, `{name}i` a request header,
        `{name}o` a response header, `{name}e` an environ key. Lines go to the logger
        `pulsar.wsgi.access` at INFO when `access_log` is on.
        """


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """The typed view of the HTTP layer (``cfg.view(HttpOptions)``, see :mod:`pulsar.options`):
    every default lives in its setting."""

    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    max_body_size: int
    keep_alive: float
    header_timeout: float
    body_timeout: float
    thread_workers: int
    access_log: bool
    access_log_format: str
    root_path: str
    forwarded_allow_ips: str
    workers: int
