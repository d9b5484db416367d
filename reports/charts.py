"""Geometry of the report's SVG charts, computed here so the HTML needs no script to draw them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

CLASS_COLOURS = {
    "covered": "#2e7d32", "single-threaded": "#e65100", "contested": "#6a1b9a",
    "personal-channel-only": "#c62828", "unattended": "#f9a825", "dormant": "#757575",
}
WIDTH = 640
LABEL = 190
ROW = 28


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: int
    x: float
    width: float
    colour: str
    note: str = ""
    caption: str = ""


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: int
    width: int = WIDTH


def class_bars(counts: dict[str, int]) -> BarChart:
    scale = _scale(max(counts.values(), default=0))
    bars = [Bar(name, n, i * ROW, LABEL, n * scale, CLASS_COLOURS.get(name, "#455a64"), f"{name}: {n}", str(n))
            for i, (name, n) in enumerate(counts.items())]
    return BarChart(bars, len(bars) * ROW + 4)


def exposure_bars(exposed: list[tuple[str, int, int, float]]) -> BarChart:
    """Per rep (label, single-threaded customers, personal-channel-only customers, exposed share):
    two stacked segments, the first what leaves with the rep, the second what never reached company mail."""
    scale = _scale(max((a + b for _, a, b, _ in exposed), default=0))
    bars: list[Bar] = []
    for i, (label, single, personal, share) in enumerate(exposed):
        note = f"{single} single-threaded ({share:.0%} of interactions), {personal} personal-only"
        bars.append(Bar(label, single, i * ROW, LABEL, single * scale, CLASS_COLOURS["single-threaded"], note))
        bars.append(Bar("", personal, i * ROW, LABEL + single * scale, personal * scale,
                        CLASS_COLOURS["personal-channel-only"], note, f"{single} + {personal} · {share:.0%}"))
    return BarChart(bars, len(exposed) * ROW + 4)


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: list[tuple[float, float]]

    @property
    def path(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass(frozen=True)
class LineChart:
    series: list[Series]
    x_labels: list[tuple[float, str]]
    y_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = 240
    left: int = 48
    top: int = 12
    bottom: int = 212


def trend_lines(history: list[tuple[date, dict[str, int]]]) -> LineChart:
    chart = LineChart([], [], [])
    if not history:
        return chart
    right = chart.width - 16
    peak = max((n for _, counts in history for n in counts.values()), default=0) or 1
    step = (right - chart.left) / max(len(history) - 1, 1)

    def y(value: int) -> float:
        return chart.bottom - (chart.bottom - chart.top) * value / peak

    names = list(history[-1][1])
    series = [Series(name, CLASS_COLOURS.get(name, "#455a64"),
                     [(chart.left + i * step, y(counts.get(name, 0))) for i, (_, counts) in enumerate(history)])
              for name in names]
    every = max(len(history) // 6, 1)
    x_labels = [(chart.left + i * step, day.isoformat()) for i, (day, _) in enumerate(history) if i % every == 0]
    y_labels = [(y(round(peak * f)), str(round(peak * f))) for f in (0, 0.5, 1)]
    return LineChart(series, x_labels, y_labels)


def _scale(peak: int) -> float:
    return (WIDTH - LABEL - 110) / peak if peak else 0.0
