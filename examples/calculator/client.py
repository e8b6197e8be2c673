"""Talk to the calculator: ``python examples/calculator/client.py http://127.0.0.1:8060/``.

Shows the synchronous proxy (single calls, keyword params, an application error, a batch), then
the asynchronous one (concurrent calls and a batch of 100), and prints what it got.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pulsar.apps import rpc


def sync_part(url: str) -> None:
    with rpc.SyncJsonProxy(url, timeout=10) as proxy:
        print("ping:", proxy.ping())
        print("calc.add(1, 2):", proxy.calc.add(1, 2))
        print("calc.subtract(a=10, b=4):", proxy.calc.subtract(a=10, b=4))
        try:
            proxy.calc.divide(1, 0)
        except rpc.RpcError as exc:
            print(f"calc.divide(1, 0): error {exc.code} {exc.message}")
        with proxy.batch() as batch:
            product = batch.calc.multiply(6, 7)
            root = batch.calc.sqrt(2)
            missing = batch.calc.power(2, 8)
        print(
            "batch:", product.result(), round(root.result(), 6), type(missing.exception()).__name__
        )
        info = proxy.server_info()
        monitors = info.get("arbiter", {}).get("monitors", {})
        workers = [w["aid"] for m in monitors.values() for w in m.get("workers", [])]
        print("functions:", len(proxy.functions_list()), "workers:", len(workers))


async def async_part(url: str) -> None:
    async with rpc.JsonProxy(url, timeout=10) as proxy:
        results = await asyncio.gather(*(proxy.calc.sleep(0.1) for _ in range(10)))
        print("10 concurrent calc.sleep(0.1):", round(sum(results), 3))
        async with proxy.batch() as batch:
            calls = [batch.calc.add(i, i) for i in range(100)]
        print("batch of 100 calc.add:", sum(c.result() for c in calls))
        print("calc.sum(1, 2, 3.5):", await proxy.calc.sum(1, 2, 3.5))
        doc = await proxy.call("rpc.discover")
        print("rpc.discover:", doc["info"]["title"], len(doc["methods"]), "methods")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8060/")
    args = parser.parse_args(argv)
    try:
        sync_part(args.url)
        asyncio.run(async_part(args.url))
    except rpc.TransportError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
