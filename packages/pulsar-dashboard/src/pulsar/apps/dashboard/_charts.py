"""Charts as pure SVG, drawn by the server (no JavaScript, nothing fetched from the network).

:func:`rate_chart` turns samples of a monotonic total ``[(time, total), ...]`` into a line of
its rate per second between consecutive samples, over the span of the samples, with the
maximum and the time span written on the axes; :func:`line_chart` draws values as they are
(several lines, e.g. run-time percentiles), a gap where a value is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import pairwise

__all__ = ["line_chart", "rate_chart", "rates"]


def rates(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """``[(time, per second)]`` between consecutive ``(time, total)`` samples (never < 0)."""
    out: list[tuple[float, float]] = []
    for (t0, v0), (t1, v1) in pairwise(samples):
        if t1 > t0:
            out.append((t1, max(0.0, (v1 - v0) / (t1 - t0))))
    return out


def rate_chart(
    samples: Sequence[tuple[float, float]],
    *,
    title: str,
    unit: str = "/s",
    width: int = 560,
    height: int = 120,
) -> str:
    """An ``<svg>`` line chart of the rate of ``samples`` (``(time, total)``, oldest first)."""
    points = rates(samples)
    pad_l, pad_r, pad_t, pad_b = 48, 8, 18, 18
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max((v for _, v in points), default=0.0)
    scale = top if top > 0 else 1.0
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="12" class="chart-title">{escape(title)}</text>',
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" class="chart-bg"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" class="chart-axis">'
        f"{_fmt(top)}{escape(unit)}</text>",
        f'<text x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end" class="chart-axis">0</text>',
    ]
    if len(points) >= 2:
        t0, t1 = points[0][0], points[-1][0]
        span = (t1 - t0) or 1.0
        coords = " ".join(
            f"{pad_l + w * (t - t0) / span:.1f},{pad_t + h - h * v / scale:.1f}" for t, v in points
        )
        parts.append(f'<polyline points="{coords}" class="chart-line" fill="none"/>')
        parts.append(
            f'<text x="{pad_l}" y="{height - 4}" class="chart-axis">-{_fmt(t1 - t0)} s</text>'
            f'<text x="{pad_l + w}" y="{height - 4}" text-anchor="end" class="chart-axis">'
            f"now: {_fmt(points[-1][1])}{escape(unit)}</text>"
        )
    else:
        parts.append(
            f'<text x="{pad_l + w / 2}" y="{pad_t + h / 2}" text-anchor="middle" '
            'class="chart-axis">collecting samples...</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


#: the colours of the lines of :func:`line_chart`, in order (the first is ``.chart-line``'s)
_COLOURS = ("#2f6fdb", "#d9822b", "#2e9e5b")


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float | None]]]],
    *,
    title: str,
    unit: str = "",
    scale: float = 1.0,
    width: int = 560,
    height: int = 120,
) -> str:
    """An ``<svg>`` chart of several lines: ``series`` is ``[(label, [(time, value or None),
    ...]), ...]``, oldest first, one time axis for all; a None breaks its line (a value alone
    between two is a dot). Values are
    written times ``scale`` followed by ``unit`` (e.g. seconds as ms: ``scale=1000``)."""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 18, 18
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    values = [v for _, points in series for _, v in points if v is not None]
    times = [t for _, points in series for t, _ in points]
    top = max(values, default=0.0)
    ceiling = top if top > 0 else 1.0
    legend = " · ".join(
        f'<tspan style="fill:{_COLOURS[i % len(_COLOURS)]}">{escape(label)}</tspan>'
        for i, (label, _) in enumerate(series)
    )
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="12" class="chart-title">{escape(title)} {legend}</text>',
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" class="chart-bg"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" class="chart-axis">'
        f"{_fmt(top * scale)}{escape(unit)}</text>",
        f'<text x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end" class="chart-axis">0</text>',
    ]
    if values and len(set(times)) >= 2:
        t0, t1 = min(times), max(times)
        span = (t1 - t0) or 1.0
        for i, (label, points) in enumerate(series):
            colour = _COLOURS[i % len(_COLOURS)]
            run: list[str] = []
            for t, v in [*points, (t1, None)]:
                if v is None:
                    if len(run) >= 2:
                        parts.append(
                            f'<polyline points="{" ".join(run)}" class="chart-line" '
                            f'style="stroke:{colour}" fill="none" data-series="{escape(label)}"/>'
                        )
                    elif run:  # a value alone between gaps: a dot
                        x, y = run[0].split(",")
                        parts.append(
                            f'<circle cx="{x}" cy="{y}" r="2" style="fill:{colour}" '
                            f'data-series="{escape(label)}"/>'
                        )
                    run = []
                    continue
                run.append(f"{pad_l + w * (t - t0) / span:.1f},{pad_t + h - h * v / ceiling:.1f}")
        last = [
            f"{escape(label)} {_fmt(points[-1][1] * scale)}{escape(unit)}"
            for label, points in series
            if points and points[-1][1] is not None
        ]
        parts.append(
            f'<text x="{pad_l}" y="{height - 4}" class="chart-axis">-{_fmt(t1 - t0)} s</text>'
            f'<text x="{pad_l + w}" y="{height - 4}" text-anchor="end" class="chart-axis">'
            f"now: {' · '.join(last) or 'no runs'}</text>"
        )
    else:
        parts.append(
            f'<text x="{pad_l + w / 2}" y="{pad_t + h / 2}" text-anchor="middle" '
            'class="chart-axis">collecting samples...</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
