"""A self-contained SVG flamechart: time runs left to right, every span drawn where it
happened (not merged by name as in a flamegraph), one band per track, the total in
the title, and a tooltip (SVG <title>) on every frame. No script, no network."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from xml.sax.saxutils import escape

from appliance.analysis.spans import Span, ordered

ROW = 17  # px per stack level
WIDTH = 1200
LEFT = 10
MIN_PX = 0.05  # narrower frames are not drawn (counted in the subtitle)
# base hue per kind; the name varies lightness so neighbours stay apart
_HUES = {"phase": 210, "initcall": 25, "module": 120, "payload": 280, "function": 15, "wait": 190, "thread": 45,
         "sample": 0, "event": 300}


def _colour(span: Span) -> str:
    h = int(hashlib.md5(span.name.encode()).hexdigest()[:4], 16)  # stable across runs, not for security
    return f"hsl({_HUES.get(span.kind, 60)},{55 + h % 30}%,{60 + (h >> 5) % 20}%)"


def _ticks(total_ms: float) -> list[float]:
    if total_ms <= 0:
        return [0.0]
    step = 10 ** len(str(int(total_ms / 5))) / 10 if total_ms >= 5 else 1.0
    for factor in (1, 2, 5, 10):
        if total_ms / (step * factor) <= 10:
            step *= factor
            break
    return [i * step for i in range(int(total_ms / step) + 1)]


def render(spans: Iterable[Span], title: str, total_us: float | None = None, subtitle: str = "") -> str:
    """The SVG text. TOTAL_US is the width of the chart (default: the last span's end)."""
    items = ordered(spans)
    start = min((s.start_us for s in items), default=0.0)
    end = max((s.end_us for s in items), default=0.0)
    total = total_us if total_us is not None else end - start
    scale = (WIDTH - 2 * LEFT) / total if total > 0 else 0.0
    tracks = list(dict.fromkeys(s.track for s in items))
    depth = {t: 0 for t in tracks}
    for s in items:
        depth[s.track] = max(depth[s.track], s.depth + 1)
    top = 64
    offsets = {}
    for track in tracks:
        offsets[track] = top + ROW  # a label row, then the frames
        top += ROW * (depth[track] + 2)
    height = top + 10
    body: list[str] = []
    hidden = 0
    for s in items:
        x = LEFT + (s.start_us - start) * scale
        w = s.duration_us * scale
        if w < MIN_PX and s.duration_us > 0:
            hidden += 1
            continue
        y = offsets[s.track] + s.depth * ROW
        tip = f"{s.name}: {s.duration_us / 1000:.3f} ms at {(s.start_us - start) / 1000:.3f} ms"
        tip += f" ({s.kind})" if s.kind else ""
        tip += f"; {s.note}" if s.note else ""
        label = ""
        if w > 30:
            chars = int(w / 6.5)
            text = s.name if len(s.name) <= chars else s.name[:max(chars - 2, 1)] + ".."
            label = f'<text x="{x + 3:.1f}" y="{y + 12:.1f}">{escape(text)}</text>'
        body.append(f'<g class="f"><title>{escape(tip)}</title><rect x="{x:.2f}" y="{y:.1f}" width="{max(w, 0.6):.2f}" '
                    f'height="{ROW - 1}" fill="{_colour(s)}"/>{label}</g>')
    for track in tracks:
        body.append(f'<text class="track" x="{LEFT}" y="{offsets[track] - 4}">{escape(track)}</text>')
    axis = []
    for tick in _ticks(total / 1000):
        x = LEFT + tick * 1000 * scale
        axis.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="46" y2="{height - 10}" class="grid"/>'
                    f'<text class="tick" x="{x + 2:.1f}" y="56">{tick:g} ms</text>')
    notes = [subtitle] if subtitle else []
    if hidden:
        notes.append(f"{hidden} frames narrower than {MIN_PX} px not drawn")
    heading = f"{title} ({total / 1000:.1f} ms)"
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="monospace" font-size="11">',
        "<style>.f:hover rect{stroke:#000;stroke-width:1}.grid{stroke:#ddd}.tick{fill:#666}"
        ".track{font-weight:bold}.title{font-size:16px}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="#fafafa"/>',
        f'<text class="title" x="{WIDTH / 2}" y="20" text-anchor="middle">{escape(heading)}</text>',
        f'<text x="{WIDTH / 2}" y="36" text-anchor="middle" fill="#555">{escape("; ".join(notes))}</text>',
        *axis, *body, "</svg>", ""])
