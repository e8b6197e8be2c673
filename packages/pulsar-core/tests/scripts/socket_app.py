"""A SocketServer run as a real process by test_socket.py: every setting on the command line.

Prints ``LISTENING <address> ...`` once bound.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import socket_helpers as sh

from pulsar.apps.socket import SocketServer


class EchoTestServer(SocketServer):
    def listening(self, addresses: list[str]) -> None:
        super().listening(addresses)
        print("LISTENING " + " ".join(addresses), flush=True)


if __name__ == "__main__":
    EchoTestServer(callable=sh.EchoProtocol, name="sockettest", bind="127.0.0.1:0").start()
