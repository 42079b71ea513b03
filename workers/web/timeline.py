"""The video page's timeline: an SVG drawn on the server (no JavaScript), one
point per scored frame (score over time), the threshold line, positive frames
filled, frames that reused a near-duplicate's score drawn hollow."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 12, 28


def timeline_svg(frames: Sequence, threshold: float, duration: float | None, label: str, anchor: str = "frame") -> Markup:
    """``frames``: objects with ``index``, ``timestamp``, ``score``, ``positive``, ``reused``.
    Each point links to ``#<anchor>-<index>`` (the frame's row on the page)."""
    end = max([duration or 0.0, *(f.timestamp for f in frames), 1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + plot_w * t / end, 1)

    def y(score: float) -> float:
        return round(TOP + plot_h * (1.0 - min(max(score, 0.0), 1.0)), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for score in (0.0, 0.5, 1.0):
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y(score) + 4}" text-anchor="end">{score:g}</text>')
    step = max(1, round(end / 8))
    for t in range(0, int(end) + 1, step):
        parts.append(f'<text class="axis" x="{x(t)}" y="{HEIGHT - 8}" text-anchor="middle">{t}s</text>')
    parts.append(
        f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(threshold)}" y2="{y(threshold)}">'
        f"<title>threshold {threshold:.2f}</title></line>"
    )
    if frames:
        points = " ".join(f"{x(f.timestamp)},{y(f.score)}" for f in frames)
        parts.append(f'<polyline class="scores" points="{points}"/>')
    for f in frames:
        kind = "frame" + (" positive" if f.positive else "") + (" reused" if f.reused else "")
        note = " (score reused from a near-duplicate frame)" if f.reused else ""
        parts.append(
            f'<a href="#{anchor}-{int(f.index)}"><circle class="{kind}" data-index="{int(f.index)}" '
            f'cx="{x(f.timestamp)}" cy="{y(f.score)}" r="{4 if f.positive else 3}">'
            f"<title>{f.timestamp:.1f}s: score {f.score:.3f}{note}</title></circle></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
