"""An SVG plot of phases across a series of kernels (`appliance range --svg`): one line
per phase, a point per kernel at its median, the real steps marked. Self-contained."""

from __future__ import annotations

from typing import Any

from appliance.markup import xml

WIDTH, HEIGHT, PAD = 900, 360, 60
COLOURS = {"kernel": "#d9480f", "to_init": "#1c7ed6", "total": "#2b8a3e"}


def render(names: list[str], medians: list[dict[str, float | None]], steps: list[dict[str, Any]], title: str) -> str:
    values = [v for m in medians for v in m.values() if v is not None]
    top = max(values, default=1.0) * 1.1 or 1.0
    x_step = (WIDTH - 2 * PAD) / max(len(names) - 1, 1)

    def x(i: int) -> float:
        return PAD + i * x_step

    def y(v: float) -> float:
        return HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="monospace" '
             'font-size="11">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fafafa"/>',
             f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{xml(title)}</text>']
    for tick in range(5):
        v = top * tick / 4
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#666">{v:.0f}</text>')
    for i, name in enumerate(names):
        parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{xml(name)}</text>')
    for phase, colour in COLOURS.items():
        points = [(x(i), y(value)) for i, m in enumerate(medians) if (value := m.get(phase)) is not None]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
            parts.append(f'<text x="{points[-1][0] + 6:.1f}" y="{points[-1][1] + 4:.1f}" fill="{colour}">{phase}</text>')
    for i, step in enumerate(steps):
        if step.get("real"):
            mid = (x(i) + x(i + 1)) / 2
            parts.append(f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="{PAD}" y2="{HEIGHT - PAD}" stroke="#c92a2a" '
                         f'stroke-dasharray="4 3"/><text x="{mid:.1f}" y="{PAD - 6}" text-anchor="middle" '
                         f'fill="#c92a2a">{(step["ratio"] - 1) * 100:+.1f}%</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
