"""The access log: one line per response on the ``pulsar.wsgi.access`` logger, gunicorn's format.

The format is a ``%``-style string over the fields listed in the ``access_log_format`` setting;
fields are computed lazily, only those the format uses, and only when the logger is enabled for
INFO.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from typing import Any

__all__ = ["AccessLogger", "access_logger"]

access_logger = logging.getLogger("pulsar.wsgi.access")


class _Atoms(dict[str, Any]):
    """A lazy mapping of the format fields (see :class:`AccessLogger`)."""

    def __init__(
        self,
        environ: dict[str, Any],
        status: str,
        response_headers: list[tuple[str, str]],
        body_bytes: int,
        duration: float,
    ) -> None:
        super().__init__()
        self.environ = environ
        self.status = status
        self.response_headers = response_headers
        self.body_bytes = body_bytes
        self.duration = duration

    def __missing__(self, key: str) -> str:
        value = self._compute(key)
        self[key] = value
        return value

    def _compute(self, key: str) -> str:
        env = self.environ
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                hkey = "HTTP_" + name.upper().replace("-", "_")
                if name.lower() in ("content-type", "content-length"):
                    hkey = name.upper().replace("-", "_")
                return str(env.get(hkey, "-"))
            if kind == "o":
                lname = name.lower()
                for hname, value in self.response_headers:
                    if hname.lower() == lname:
                        return value
                return "-"
            if kind == "e":
                return str(env.get(name, "-"))
            return "-"
        if key == "h":
            return str(env.get("REMOTE_ADDR", "-"))
        if key == "l":
            return "-"
        if key == "u":
            return _user(env.get("HTTP_AUTHORIZATION", ""))
        if key == "t":
            return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")
        if key == "r":
            uri = env.get("RAW_URI", "")
            return f"{env.get('REQUEST_METHOD', '-')} {uri} {env.get('SERVER_PROTOCOL', '-')}"
        if key == "m":
            return str(env.get("REQUEST_METHOD", "-"))
        if key == "U":
            return str(env.get("SCRIPT_NAME", "")) + str(env.get("PATH_INFO", ""))
        if key == "q":
            return str(env.get("QUERY_STRING", ""))
        if key == "H":
            return str(env.get("SERVER_PROTOCOL", "-"))
        if key == "s":
            return self.status.split(" ", 1)[0] if self.status else "-"
        if key == "b":
            return str(self.body_bytes) if self.body_bytes else "-"
        if key == "B":
            return str(self.body_bytes)
        if key == "f":
            return str(env.get("HTTP_REFERER", "-"))
        if key == "a":
            return str(env.get("HTTP_USER_AGENT", "-"))
        if key == "T":
            return str(int(self.duration))
        if key == "M":
            return str(int(self.duration * 1000))
        if key == "D":
            return str(int(self.duration * 1_000_000))
        if key == "L":
            return f"{self.duration:.6f}"
        if key == "p":
            return f"<{os.getpid()}>"
        return "-"


def _user(authorization: str) -> str:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return "-"
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("latin-1")
    except ValueError:
        return "-"
    return decoded.partition(":")[0] or "-"


class AccessLogger:
    """Formats and logs access lines.

    Args:
        enabled: the ``access_log`` setting.
        fmt: the ``access_log_format`` setting.
        logger: defaults to ``pulsar.wsgi.access``.
    """

    def __init__(self, enabled: bool, fmt: str, logger: logging.Logger | None = None) -> None:
        self.enabled = enabled
        self.fmt = fmt
        self.logger = logger or access_logger

    @property
    def active(self) -> bool:
        """Whether a line would be emitted (checked before gathering anything)."""
        return self.enabled and self.logger.isEnabledFor(logging.INFO)

    def format(
        self,
        environ: dict[str, Any],
        status: str,
        response_headers: list[tuple[str, str]],
        body_bytes: int,
        duration: float,
    ) -> str:
        """The access line of one response."""
        atoms = _Atoms(environ, status, response_headers, body_bytes, duration)
        try:
            return self.fmt % atoms
        except (TypeError, ValueError, KeyError) as exc:
            return f"invalid access_log_format ({exc})"

    def log(
        self,
        environ: dict[str, Any],
        status: str,
        response_headers: list[tuple[str, str]],
        body_bytes: int,
        duration: float,
    ) -> None:
        """Log the line of one response (if :attr:`active`)."""
        if self.active:
            self.logger.info(
                "%s", self.format(environ, status, response_headers, body_bytes, duration)
            )
