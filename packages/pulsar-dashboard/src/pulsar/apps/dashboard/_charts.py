"""Charts as pure SVG, drawn by the server (no JavaScript, nothing fetched from the network).

:func:`rate_chart` turns samples of a monotonic total ``[(time, total), ...]`` into a line of
its rate per second between consecutive samples, over the span of the samples, with the
maximum and the time span written on the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import pairwise

__all__ = ["rate_chart", "rates"]


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


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
