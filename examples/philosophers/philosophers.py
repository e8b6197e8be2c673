"""The dining philosophers, as pulsar actors.

Five philosopher actors sit around a table with five forks. The forks belong to the arbiter: a
philosopher asks for one with the ``pickup_fork`` command and gives it back with ``putdown_fork``.
A philosopher holding one fork who cannot get the other puts it down and tries again later, so the
table never deadlocks. Each philosopher eats ``--eat`` times (default 3), then the arbiter prints
how many times each one ate and how often one had to wait, and stops.

Run: ``python examples/philosophers/philosophers.py [--philosophers 5] [--eat 3]`` plus any pulsar
setting (``--concurrency thread``, ``--log-level debug``...).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from typing import Any

import pulsar

# -- commands run by the arbiter (the forks are its state) ----------------------------------------


@pulsar.command()
def pickup_fork(request: pulsar.Request, fork: int) -> bool:
    """Give ``fork`` to the caller if it is free."""
    forks: dict[int, str | None] = request.actor.extra["forks"]
    if forks[fork] is None:
        forks[fork] = request.caller
        return True
    return False


@pulsar.command()
def putdown_fork(request: pulsar.Request, fork: int) -> None:
    """The caller puts ``fork`` back on the table."""
    forks: dict[int, str | None] = request.actor.extra["forks"]
    if forks[fork] != request.caller:
        raise pulsar.CommandError(f"fork {fork} is not held by {request.caller}")
    forks[fork] = None


@pulsar.command()
def done_eating(request: pulsar.Request, name: str, meals: int, waits: int) -> None:
    """A philosopher finished its meals."""
    table = request.actor.extra
    table["results"][name] = (meals, waits)
    if len(table["results"]) == table["seats"]:
        table["finished"].set_result(None)


# -- the philosopher actor -----------------------------------------------------------------------


async def philosopher(actor: Any) -> None:
    """Start callable of a philosopher: think, take two forks, eat, repeat."""
    seat, seats, meals = actor.params["seat"], actor.params["seats"], actor.params["meals"]
    left, right = seat, (seat + 1) % seats
    eaten = waits = 0

    async def run() -> None:
        nonlocal eaten, waits
        while eaten < meals:
            await asyncio.sleep(random.uniform(0.001, 0.01))  # thinking
            if not await pulsar.send("arbiter", "pickup_fork", left):
                waits += 1
                continue
            if not await pulsar.send("arbiter", "pickup_fork", right):
                await pulsar.send("arbiter", "putdown_fork", left)
                waits += 1
                continue
            await asyncio.sleep(random.uniform(0.001, 0.01))  # eating
            eaten += 1
            await pulsar.send("arbiter", "putdown_fork", right)
            await pulsar.send("arbiter", "putdown_fork", left)
        await pulsar.send("arbiter", "done_eating", actor.name, eaten, waits)

    actor.extra["task"] = asyncio.ensure_future(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--philosophers", type=int, default=5)
    parser.add_argument("--eat", type=int, default=3)
    args, rest = parser.parse_known_args(argv)
    cfg = pulsar.Config(log_level="warning")
    cfg.load(rest)
    seats = args.philosophers

    async def dinner(arbiter: pulsar.Arbiter) -> None:
        table = arbiter.extra
        table.update(
            forks={i: None for i in range(seats)},
            results={},
            seats=seats,
            finished=asyncio.get_running_loop().create_future(),
        )
        try:
            for seat in range(seats):
                await pulsar.spawn(
                    name=f"philosopher-{seat}",
                    start=philosopher,
                    seat=seat,
                    seats=seats,
                    meals=args.eat,
                )
            await asyncio.wait_for(table["finished"], 60)
            for name, (meals, waits) in sorted(table["results"].items()):
                print(f"{name} ate {meals} times, waited {waits} times", flush=True)
            assert all(holder is None for holder in table["forks"].values())
            print("all forks are back on the table", flush=True)
        finally:
            arbiter.stop()

    return pulsar.arbiter(start=dinner, cfg=cfg).start()


if __name__ == "__main__":
    sys.exit(main())
