"""The pipeline page's charts: SVGs drawn on the server (no JavaScript, no external assets), as
the video page's timeline is. Videos finished per hour (done and failed, stacked), the backlog
at each hour's end, and each stage's p50 and p95 seconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 160
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 24


def _frame(label: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]


def _axes(parts: list[str], hours: Sequence[datetime], top: float) -> None:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts.append(f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    for value, y in ((top, TOP), (top / 2, TOP + plot_h / 2), (0, TOP + plot_h)):
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    step = max(1, len(hours) // 8)
    for i in range(0, len(hours), step):
        x = LEFT + plot_w * (i + 0.5) / len(hours)
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{hours[i]:%d %Hh}</text>')


def _nice(top: float) -> float:
    """A round upper bound for an axis (1, 2, 5 x 10^n)."""
    top = max(top, 1.0)
    scale = 10 ** (len(str(int(top))) - 1)
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= top)


def finished_per_hour_svg(hours: Sequence[datetime], done: Sequence[int], failed: Sequence[int]) -> Markup:
    label = "videos finished per hour: done and failed"
    top = _nice(max((d + f for d, f in zip(done, failed, strict=True)), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(label)
    _axes(parts, hours, top)
    width = plot_w / max(len(hours), 1)
    for i, (hour, d, f) in enumerate(zip(hours, done, failed, strict=True)):
        x = LEFT + i * width + 1
        base = TOP + plot_h
        for kind, n in (("done", d), ("failed", f)):
            if n:
                h = plot_h * n / top
                base -= h
                parts.append(
                    f'<rect class="bar {kind}" x="{x:.1f}" y="{base:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}">'
                    f"<title>{hour:%Y-%m-%d %H}:00 UTC: {n} {kind}</title></rect>"
                )
    parts.append("</svg>")
    return Markup("".join(parts))


def backlog_svg(hours: Sequence[datetime], backlog: Sequence[int], limit: int) -> Markup:
    label = "videos waiting (queued or in a stage) at each hour's end"
    top = _nice(max([*backlog, 0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(label)
    _axes(parts, hours, top)

    def xy(i: int, n: float) -> str:
        return f"{LEFT + plot_w * (i + 0.5) / len(hours):.1f},{TOP + plot_h * (1 - min(n, top) / top):.1f}"

    if limit <= top:
        y = TOP + plot_h * (1 - limit / top)
        parts.append(
            f'<line class="limit" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"><title>backlog_limit {limit}</title></line>'
        )
    if backlog:
        parts.append(f'<polyline class="backlog" points="{" ".join(xy(i, n) for i, n in enumerate(backlog))}"/>')
    for i, (hour, n) in enumerate(zip(hours, backlog, strict=True)):
        x, y = xy(i, n).split(",")
        parts.append(f'<circle class="backlog" cx="{x}" cy="{y}" r="2"><title>{hour:%Y-%m-%d %H}:59 UTC: {n} waiting</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stage_times_svg(stages: Mapping[str, tuple[float, float, int]]) -> Markup:
    label = "each stage's p50 and p95 seconds (its newest runs)"
    row = 22
    height = TOP + BOTTOM + row * len(stages)
    top = _nice(max((p95 for _, p95, _ in stages.values()), default=0))
    left, plot_w = 80, WIDTH - 80 - 120
    parts = _frame(label, height)
    for i, (stage, (p50, p95, runs)) in enumerate(stages.items()):
        y = TOP + i * row
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(stage)}</text>')
        for kind, value, h in (("p95", p95, 16), ("p50", p50, 10)):
            offset = (16 - h) / 2
            parts.append(
                f'<rect class="bar {kind}" x="{left}" y="{y + 2 + offset:.1f}" width="{plot_w * value / top:.1f}" height="{h}">'
                f"<title>{escape(stage)} {kind}: {value:.2f} s over {runs} runs</title></rect>"
            )
        parts.append(f'<text class="axis" x="{left + plot_w + 6}" y="{y + 14}">{p50:.2f} / {p95:.2f} s</text>')
    parts.append(f'<text class="axis" x="{left}" y="{height - 6}">0 s</text>')
    parts.append(f'<text class="axis" x="{left + plot_w}" y="{height - 6}" text-anchor="end">{top:g} s</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
