"""The HTTP benchmark's targets compare two measurements by the median of paired rounds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"


def load_http_bench():
    sys.path.insert(0, str(BENCH))  # its own imports (_common)
    try:
        spec = importlib.util.spec_from_file_location("bench_http_under_test", BENCH / "http.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # (dataclasses look their module up)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_the_ratio_is_the_median_of_paired_rounds_not_of_independent_bests() -> None:
    bench = load_http_bench()
    results = bench.Results()
    # round 2 of "on" hit a quiet moment, round 3 of "off" did: the bests' ratio (1000/1300)
    # pairs measurements minutes apart; each round's own ratio is 0.9, 0.9, 0.6
    for on, off in ((900, 1000), (1000, 1111.2), (780, 1300)):
        results.add("log", "pulsar inline", bench.WrkResult(on, 1.0, 2.0, int(on)))
        results.add("ka1", "pulsar inline", bench.WrkResult(off, 1.0, 2.0, int(off)))
    value, how = results.ratio(("log", "pulsar inline"), ("ka1", "pulsar inline"))
    assert round(value, 2) == 0.9
    assert how.startswith("median of 3 paired rounds")
    assert results.get("log", "pulsar inline").rps == 1000  # the table keeps the best


def test_one_round_compares_the_two_results() -> None:
    bench = load_http_bench()
    results = bench.Results()
    results.add("ka1", "pulsar threads", bench.WrkResult(4000, 1.0, 2.0, 4000))
    results.add("ka1", "gunicorn gthread", bench.WrkResult(1000, 1.0, 2.0, 1000))
    value, how = results.ratio(("ka1", "pulsar threads"), ("ka1", "gunicorn gthread"))
    assert value == 4.0 and "4,000 vs 1,000" in how
    assert results.ratio(("ka1", "pulsar threads"), ("ka1", "uvicorn")) == (0.0, "")
