"""A JSON-RPC calculator served by pulsar: ``python examples/calculator/calculator.py``.

The root handler is a :class:`~pulsar.apps.rpc.PulsarServerCommands` (``ping``, ``echo``,
``server_info``, ``functions_list``, ``documentation``, ``kill_actor``) with a ``Calculator``
mounted under ``calc`` (``calc.add``, ``calc.divide``...). ``rpc.discover`` returns the OpenRPC
document of all of it.

Every pulsar option works (``--bind 127.0.0.1:0 --workers 2 --rpc-timeout 5``...). Once the
socket is bound it prints ``LISTENING <address>``. Try it with the client next to this file::

    python examples/calculator/calculator.py --bind 127.0.0.1:8060 &
    python examples/calculator/client.py http://127.0.0.1:8060/
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pulsar
from pulsar.apps import rpc


def randompaths(
    num_paths: int = 1, size: int = 250, mu: float = 0.0, sigma: float = 1.0
) -> list[list[float]]:
    """Random walks: ``num_paths`` paths of ``size`` steps drawn from N(mu, sigma).

    Args:
        num_paths: how many paths.
        size: steps per path.
        mu: mean of a step.
        sigma: standard deviation of a step.
    """
    if not 0 < num_paths * size <= 100_000:
        raise rpc.InvalidParams("Invalid params: num_paths * size must be in 1 ... 100000")
    paths = []
    for _ in range(num_paths):
        value, path = 0.0, []
        for _ in range(size):
            value += random.gauss(mu, sigma)
            path.append(value)
        paths.append(path)
    return paths


class Calculator(rpc.JSONRPC):
    """Arithmetic over JSON-RPC."""

    def rpc_add(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        """Adds two numbers."""
        return a + b

    def rpc_subtract(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        """Subtracts b from a."""
        return a - b

    def rpc_multiply(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        """Multiplies two numbers."""
        return a * b

    def rpc_divide(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        """Divides a by b.

        Raises the application error -32001 when b is zero.
        """
        if b == 0:
            raise rpc.RpcError(-32001, "division by zero", {"a": a})
        return a / b

    def rpc_sqrt(self, request: rpc.RpcRequest, x: float) -> float:
        """The square root of a non-negative number."""
        if x < 0:
            raise rpc.InvalidParams("Invalid params: x must be >= 0")
        return math.sqrt(x)

    async def rpc_sum(self, request: rpc.RpcRequest, *values: float) -> float:
        """The sum of any number of values (an async method: it runs on the worker's loop)."""
        await asyncio.sleep(0)
        return sum(values)

    async def rpc_sleep(self, request: rpc.RpcRequest, seconds: float) -> float:
        """Waits ``seconds`` without blocking the worker, then returns them."""
        await asyncio.sleep(seconds)
        return seconds

    async def rpc_worker(self, request: rpc.RpcRequest) -> dict[str, Any]:
        """The worker serving this call and whether the call runs on that worker's loop."""
        actor = request.actor
        if actor is None:
            return {"aid": None, "on_actor_loop": False}
        on_loop = asyncio.get_running_loop() is actor.loop and pulsar.get_actor() is actor
        return {"aid": actor.aid, "name": actor.name, "on_actor_loop": on_loop}

    rpc_randompaths = rpc.rpc_method(randompaths)


class Root(rpc.PulsarServerCommands):
    """The pulsar calculator: server commands plus ``calc.*``."""


def handler(**options: Any) -> rpc.JSONRPC:
    """The application: a :class:`Root` with the :class:`Calculator` under ``calc``."""
    return Root(title="Pulsar calculator", **options).add_handler("calc", Calculator())


class CalculatorServer(rpc.RpcServer):
    """An :class:`~pulsar.apps.rpc.RpcServer` announcing its bound address."""

    name = "calculator"

    def listening(self, addresses: list[str]) -> None:
        super().listening(addresses)
        print("LISTENING " + " ".join(addresses), flush=True)


def server(**params: Any) -> CalculatorServer:
    """The calculator server (``params`` are settings: ``bind``, ``workers``...)."""
    params.setdefault("bind", "127.0.0.1:8060")
    return CalculatorServer(callable=handler(), **params)


if __name__ == "__main__":
    server().start()
