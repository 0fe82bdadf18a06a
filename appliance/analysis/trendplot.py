"""An SVG plot of one phase over a history of run sets (`appliance history --svg`): a
point per run set at its median with its 95% interval, the run sets' labels (or dates)
along the axis, and the change points Otava found marked. Self-contained."""

from __future__ import annotations

from appliance.markup import xml
from appliance.store.query import Point
from appliance.store.trend import Change

WIDTH, HEIGHT, PAD = 960, 380, 70
FIRST_X = 130  # the first point: its label, slanted back from its tick, needs the room to its left


def render(points: list[Point], changes: list[Change], phase: str, title: str) -> str:
    highs = [p.ci[1] if p.ci else p.median for p in points]
    lows = [p.ci[0] if p.ci else p.median for p in points]
    top, bottom = max(highs, default=1.0), min(lows, default=0.0)
    span = (top - bottom) or max(top, 1.0) * 0.1
    top, bottom = top + span * 0.1, max(bottom - span * 0.1, 0.0)
    x_step = (WIDTH - PAD - FIRST_X) / max(len(points) - 1, 1)

    def x(i: int) -> float:
        return FIRST_X + i * x_step

    def y(v: float) -> float:
        return HEIGHT - PAD - (v - bottom) / (top - bottom) * (HEIGHT - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="monospace" '
             'font-size="11">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fafafa"/>',
             f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{xml(title)}</text>',
             f'<text x="{PAD - 6}" y="{PAD - 16}" text-anchor="start" fill="#444">'  # over the axis: never cut
             f'{xml(phase)} (ms, median and 95% CI)</text>']
    for tick in range(5):
        v = bottom + (top - bottom) * tick / 4
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#666">{v:.1f}</text>')
    every = max(1, len(points) // 12)  # at most a dozen labels along the axis
    for i, point in enumerate(points):
        low, high = point.ci or (point.median, point.median)
        parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" stroke="#74c0fc"/>')
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(point.median):.1f}" r="3" fill="#1c7ed6">'
                     f'<title>run set {point.run_set.id} {xml(_label(point))}: {point.median:.1f} ms, '
                     f'n={point.n}</title></circle>')
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="end" '
                         f'transform="rotate(-30 {x(i):.1f} {HEIGHT - PAD + 16})">{xml(_label(point))}</text>')
    for change in changes:
        at = x(change.index) - x_step / 2
        parts.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{PAD}" y2="{HEIGHT - PAD}" stroke="#d9480f" '
                     'stroke-dasharray="4 3"/>'
                     f'<text x="{at + 4:.1f}" y="{PAD + 12}" fill="#d9480f">{change.relative * 100:+.1f}% '
                     f'(p={change.pvalue:.1g})</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _label(point: Point) -> str:
    return str(point.run_set.dims.get("label") or point.run_set.recorded_at.strftime("%Y-%m-%d %H:%M"))
