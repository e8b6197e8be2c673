"""The exceptions of pulsar-wsgi.

Every error of this package derives from :class:`HttpError`. Protocol errors are split the h11
way: :class:`RemoteProtocolError` when the peer broke HTTP (it carries the status code to answer
with), :class:`LocalProtocolError` when we (or the WSGI application) did. All of them pickle.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pulsar import PulsarError

__all__ = ["ClientDisconnected", "HttpError", "LocalProtocolError", "RemoteProtocolError"]


class HttpError(PulsarError):
    """Base class of the errors of :mod:`pulsar.apps.wsgi`.

    ``status`` is the HTTP status code that describes the error best (500 when unknown).
    """

    def __init__(self, message: str = "", status: int = 500) -> None:
        super().__init__(message or HTTPStatus(status).phrase)
        self.status = int(status)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.status))


class RemoteProtocolError(HttpError):
    """The client sent bytes that break HTTP/1.1; ``status`` is the 4xx/5xx to answer with."""

    def __init__(self, message: str = "", status: int = 400) -> None:
        super().__init__(message, status)


class LocalProtocolError(HttpError):
    """We were about to send something that breaks HTTP/1.1 (usually the application's fault:
    invalid headers, more or fewer body bytes than its ``Content-Length``)."""


class ClientDisconnected(HttpError, OSError):
    """The client went away: raised by ``wsgi.input`` reads and by writes of the response.

    It is an :class:`OSError` too, which WSGI frameworks already treat as an I/O failure.
    """

    def __init__(self, message: str = "client disconnected", status: int = 400) -> None:
        HttpError.__init__(self, message, status)
