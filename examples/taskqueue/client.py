"""Queue work over JSON-RPC and wait for the results.

python examples/taskqueue/client.py 127.0.0.1:8060 [-n 10]
"""

from __future__ import annotations

import argparse
import sys

from pulsar.apps.rpc import SyncJsonProxy


def main(argv: list[str] | None = None) -> int:
    """Queue ``n`` tasks of each job, wait for each, print a summary; exit 1 on a failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args(argv)
    api = SyncJsonProxy(f"http://{args.address}")
    print("jobs:", ", ".join(sorted(api.job_list())))
    queued = [api.queue_task("add", [i, i]) for i in range(args.n)]
    queued += [api.queue_task("slow_square", [i], {"delay": 0.05}) for i in range(args.n)]
    results = [api.wait_for_task(t["id"], 30) for t in queued]
    bad = [r for r in results if r["status"] != "SUCCESS"]
    values = [r["result"] for r in results]
    print(f"{len(results) - len(bad)}/{len(results)} tasks succeeded: {values}")
    print("next heartbeat at", api.next_scheduled()["heartbeat"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
