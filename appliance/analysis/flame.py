"""A self-contained SVG flamechart: time runs left to right, every span drawn where it
happened (not merged by name as in a flamegraph), one band per track, the total in
the title, and a tooltip (SVG <title>) on every frame.

Interactive as flamegraph.pl's charts are, with a small script inside the SVG (no
network, nothing external): click a frame to zoom the time axis to it, "Search" (or
Ctrl-F) highlights the frames whose name matches a regular expression and shows the
share of the chart's time they cover, "Reset" (or Escape) undoes both. The URL's
fragment does the same (`chart.svg#search=ahci`, `#zoom=12`: the 12th frame), which
is how a headless browser test drives it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from appliance.analysis.spans import Span, ordered
from appliance.markup import xml

ROW = 17  # px per stack level
WIDTH = 1200
LEFT = 10
MIN_PX = 0.05  # narrower frames start hidden (kept in the file: zooming in shows them)
MIN_CHARS = 4  # a label shorter than this says nothing ("cr..."): none instead
CHAR_PX = 6.7  # a character of the 11 px monospace labels (Chromium lays out DejaVu Sans Mono at 6.6);
# in a browser the script measures each label instead (getComputedTextLength)
# base hue per kind; the name varies lightness so neighbours stay apart
_HUES = {"phase": 210, "initcall": 25, "module": 120, "payload": 280, "function": 15, "wait": 190, "thread": 45,
         "sample": 0, "event": 300}


def _colour(span: Span) -> str:
    h = int(hashlib.md5(span.name.encode()).hexdigest()[:4], 16)  # stable across runs, not for security
    return f"hsl({_HUES.get(span.kind, 60)},{55 + h % 30}%,{60 + (h >> 5) % 20}%)"


def ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values between LO and HI for an axis (1, 2 or 5 times a power of ten apart),
    at most MOST + 1 of them: the flamechart's and the report's axes."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _label(name: str, width_px: float) -> str:
    """The frame's name cut to fit WIDTH_PX (the script does the same when it zooms)."""
    chars = int((width_px - 4) / CHAR_PX)
    if chars < min(MIN_CHARS, len(name)):
        return ""
    return name if len(name) <= chars else name[:chars - 2] + ".."


# The chart's script: plain ES5, no library; it only moves, hides and colours what the
# SVG already holds. Each chart's script finds its own <svg>, so a page can hold several.
_SCRIPT = """<script type="text/ecmascript"><![CDATA[
(function () {
  var svg = document.currentScript ? document.currentScript.closest("svg") : document.documentElement;
  var W = @WIDTH@, L = @LEFT@, TOTAL = @TOTAL@, MIN_PX = @MIN_PX@, MIN_CHARS = @MIN_CHARS@, CHAR_PX = @CHAR_PX@,
      ROW = @ROW@;
  var frames = Array.prototype.slice.call(svg.querySelectorAll("g.f"));
  var status = svg.querySelector(".status"), note = svg.querySelector(".note"), axis = svg.querySelector(".axis");
  var NS = "http://www.w3.org/2000/svg", BOTTOM = +svg.getAttribute("height") - 10;
  function label(text, name, w) {  // the longest start of NAME that fits W, measured as laid out
    var room = w - 6, chars = Math.floor((w - 4) / CHAR_PX);
    if (chars < Math.min(MIN_CHARS, name.length)) { text.textContent = ""; return; }
    text.textContent = name;
    if (!text.getComputedTextLength || text.getComputedTextLength() <= room) return;
    var lo = 0, hi = name.length;
    while (lo < hi) {  // the most characters (then "..") that fit
      var mid = Math.ceil((lo + hi) / 2);
      text.textContent = name.slice(0, mid) + "..";
      if (text.getComputedTextLength() <= room) lo = mid; else hi = mid - 1;
    }
    text.textContent = lo >= MIN_CHARS - 2 && lo > 0 ? name.slice(0, lo) + ".." : "";
  }
  function ticks(lo, hi, most) {  // as flame.ticks: 1, 2 or 5 times a power of ten apart
    if (hi <= lo) return [lo];
    var raw = (hi - lo) / most, power = Math.pow(10, Math.floor(Math.log10(raw))), step = 10 * power;
    [1, 2, 5, 10].some(function (m) { if (m * power >= raw) { step = m * power; return true; } return false; });
    var out = [], first = Math.ceil(lo / step) * step;
    for (var v = first; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  function fmt(ms, step) {
    var digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return ms.toFixed(Math.min(digits, 6)) + " ms";
  }
  function drawAxis(z0, z1) {  // the time axis of the window shown, in ms, with a unit on every tick
    while (axis.firstChild) axis.removeChild(axis.firstChild);
    var k = (W - 2 * L) / (z1 - z0), marks = ticks(z0 / 1000, z1 / 1000, 10);
    var step = marks.length > 1 ? marks[1] - marks[0] : 1;
    marks.forEach(function (ms) {
      var x = L + (ms * 1000 - z0) * k, end = x > W - L - 60;
      var line = document.createElementNS(NS, "line");
      line.setAttribute("x1", x.toFixed(1)); line.setAttribute("x2", x.toFixed(1));
      line.setAttribute("y1", "46"); line.setAttribute("y2", String(BOTTOM)); line.setAttribute("class", "grid");
      var text = document.createElementNS(NS, "text");
      text.setAttribute("class", "tick"); text.setAttribute("y", "56");
      text.setAttribute("x", (end ? x - 2 : x + 2).toFixed(1));
      if (end) text.setAttribute("text-anchor", "end");
      text.textContent = fmt(ms, step);
      axis.appendChild(line); axis.appendChild(text);
    });
  }
  function outside(shown) {  // a phase too narrow for its name: the name beside it, or under it, where there is room
    var rows = {}, taken = {};  // taken: per row, the x ranges of its frames and of the names placed there
    shown.forEach(function (f) {
      var row = f.g.getAttribute("data-row");
      (rows[row] = rows[row] || []).push(f);
      if (f.x1 - f.x0 >= 1) (taken[row] = taken[row] || []).push([f.x0, f.x1]);  // an instant holds no text
    });
    function free(row, a, b) {
      return a >= L && b <= W - L && !(taken[row] || []).some(function (r) { return r[1] > a && r[0] < b; });
    }
    Object.keys(rows).sort().forEach(function (row) {
      var parts = row.split("."), below = parts[0] + "." + (+parts[1] + 1);
      rows[row].sort(function (a, b) { return a.x0 - b.x0; }).forEach(function (f) {
        var text = f.g.querySelector("text"), kind = f.g.getAttribute("data-k");
        var y = text.getAttribute("data-y") || text.getAttribute("y");
        text.setAttribute("data-y", y); text.setAttribute("y", y);
        text.classList.remove("outside"); text.removeAttribute("text-anchor");
        if (text.textContent || (kind !== "phase" && kind !== "payload")) return;
        text.textContent = f.g.getAttribute("data-n");
        var need = (text.getComputedTextLength ? text.getComputedTextLength() : Infinity) + 3;
        var places = [[row, f.x1 + 3, f.x1 + 3 + need, 0], [row, f.x0 - 3 - need, f.x0 - 3, 0],
                      [below, f.x0, f.x0 + need, ROW], [below, f.x1 - need, f.x1, ROW]];
        var place = places.filter(function (p) { return free(p[0], p[1], p[2]); })[0];
        if (!place) {
          text.textContent = "";
          text.setAttribute("x", (f.x0 + 3).toFixed(1));
          return;
        }
        (taken[place[0]] = taken[place[0]] || []).push([place[1], place[2]]);
        text.setAttribute("x", place[1].toFixed(1));
        text.setAttribute("y", (+y + place[3]).toFixed(1));
        text.classList.add("outside");
      });
    });
  }
  function draw(z0, z1) {
    var k = (W - 2 * L) / (z1 - z0), narrow = 0, shown = [];
    frames.forEach(function (g) {
      var s = +g.getAttribute("data-s"), e = +g.getAttribute("data-e");
      var rect = g.querySelector("rect"), text = g.querySelector("text");
      if (e < z0 || s > z1 || (e === s && (s === z0 || s === z1) && z1 - z0 < TOTAL)) {
        g.style.display = "none"; return;
      }
      if (e > s && (e - s) * k < MIN_PX) { narrow++; g.style.display = "none"; return; }
      g.style.display = "";
      var x0 = Math.max(L + (s - z0) * k, L), x1 = Math.min(L + (e - z0) * k, W - L);
      rect.setAttribute("x", x0.toFixed(2));
      rect.setAttribute("width", Math.max(x1 - x0, 0.6).toFixed(2));
      text.setAttribute("x", (x0 + 3).toFixed(1));
      label(text, g.getAttribute("data-n"), x1 - x0);
      shown.push({g: g, x0: x0, x1: x1});
    });
    outside(shown);
    drawAxis(z0, z1);
    var said = note.getAttribute("data-subtitle") || "";
    var hidden = narrow ? narrow + " frames narrower than " + MIN_PX + " px hidden here; zoom in to see them" : "";
    note.textContent = [said, hidden].filter(function (x) { return x; }).join("; ");
  }
  function zoom(g) {
    var s = +g.getAttribute("data-s"), e = +g.getAttribute("data-e");
    if (e <= s) return;
    draw(s, e);
    svg.classList.add("zoomed");
    status.textContent = "zoomed to " + (s / 1000).toFixed(3) + "-" + (e / 1000).toFixed(3) + " ms";
  }
  function search(pattern) {
    var re;
    try { re = new RegExp(pattern); } catch (err) { status.textContent = "bad search: " + err.message; return; }
    var hits = [];
    frames.forEach(function (g) {
      var hit = re.test(g.getAttribute("data-n"));
      g.classList.toggle("hit", hit);
      if (hit) hits.push([+g.getAttribute("data-s"), +g.getAttribute("data-e")]);
    });
    hits.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -Infinity;  // the union of the matched intervals
    hits.forEach(function (h) {
      if (h[1] > end) { covered += h[1] - Math.max(h[0], end); end = h[1]; }
    });
    status.textContent = "matched " + hits.length + " frames, " +
      (TOTAL > 0 ? (100 * covered / TOTAL).toFixed(1) : "0.0") + "% of the time";
  }
  function reset() {
    draw(0, TOTAL);
    svg.classList.remove("zoomed");
    frames.forEach(function (g) { g.classList.remove("hit"); });
    status.textContent = "";
  }
  frames.forEach(function (g) { g.addEventListener("click", function () { zoom(g); }); });
  svg.querySelector(".reset").addEventListener("click", reset);
  svg.querySelector(".search").addEventListener("click", function () {
    var pattern = window.prompt("Search frames (regular expression)");
    if (pattern) search(pattern);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") reset();
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "f") {
      ev.preventDefault();
      var pattern = window.prompt("Search frames (regular expression)");
      if (pattern) search(pattern);
    }
  });
  function follow() {  // the fragment: on opening, and whenever it changes
    var hash = decodeURIComponent(window.location.hash.slice(1));
    if (hash.indexOf("search=") === 0) search(hash.slice(7));
    if (hash.indexOf("zoom=") === 0 && frames[+hash.slice(5)]) {
      frames[+hash.slice(5)].dispatchEvent(new MouseEvent("click", {bubbles: true}));
    }
    if (hash === "" || hash === "reset") reset();
  }
  window.addEventListener("hashchange", follow);
  follow();
})();
]]></script>"""


def _script(total_us: float) -> str:
    values = {"WIDTH": WIDTH, "LEFT": LEFT, "TOTAL": f"{total_us:.3f}", "MIN_PX": MIN_PX, "ROW": ROW,
              "MIN_CHARS": MIN_CHARS, "CHAR_PX": CHAR_PX}
    script = _SCRIPT
    for name, value in values.items():
        script = script.replace(f"@{name}@", str(value))
    return script


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
        narrow = w < MIN_PX and s.duration_us > 0
        hidden += narrow
        y = offsets[s.track] + s.depth * ROW
        tip = f"{s.name}: {s.duration_us / 1000:.3f} ms at {(s.start_us - start) / 1000:.3f} ms"
        tip += f" ({s.kind})" if s.kind else ""
        tip += f"; {s.note}" if s.note else ""
        label = _label(s.name, w)
        hide = ' style="display:none"' if narrow else ""
        body.append(f'<g class="f"{hide} data-s="{s.start_us - start:.3f}" '
                    f'data-e="{s.end_us - start:.3f}" data-row="{tracks.index(s.track)}.{s.depth}" '
                    f'data-k="{xml(s.kind)}" data-n="{xml(s.name)}"><title>{xml(tip)}</title>'
                    f'<rect x="{x:.2f}" y="{y:.1f}" width="{max(w, 0.6):.2f}" height="{ROW - 1}" fill="{_colour(s)}"/>'
                    f'<text x="{x + 3:.1f}" y="{y + 12:.1f}">{xml(label)}</text></g>')
    roots = {s.track for s in items if s.depth == 0 and s.name == s.track}
    for track in tracks:  # a track whose root frame has its name is not labelled twice ("boot")
        if track not in roots:
            body.append(f'<text class="track" x="{LEFT}" y="{offsets[track] - 4}">{xml(track)}</text>')
    axis = []
    for tick in ticks(0.0, total / 1000, 10):
        x = LEFT + tick * 1000 * scale
        end_anchor = x > WIDTH - LEFT - 60  # the last label ends at its line, inside the picture
        anchor = ' text-anchor="end"' if end_anchor else ""
        axis.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="46" y2="{height - 10}" class="grid"/>'
                    f'<text class="tick" x="{x - 2 if end_anchor else x + 2:.1f}" y="56"{anchor}>{tick:g} ms</text>')
    notes = [subtitle] if subtitle else []
    if hidden:
        notes.append(f"{hidden} frames narrower than {MIN_PX} px hidden until you zoom in")
    heading = f"{title} ({total / 1000:.1f} ms)"
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="monospace" font-size="11">',
        "<style>.f:hover rect{stroke:#000;stroke-width:1}.f{cursor:pointer}.grid{stroke:#ddd}.tick{fill:#666}"
        ".track{font-weight:bold}.title{font-size:16px}.button{cursor:pointer;fill:#2255aa}.hit rect{fill:#e040fb}"
        ".outside{fill:#333;font-style:italic}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="#fafafa"/>',
        f'<text class="title" x="{WIDTH / 2}" y="20" text-anchor="middle">{xml(heading)}</text>',
        f'<text class="note" x="{WIDTH / 2}" y="36" text-anchor="middle" fill="#555" '
        f'data-subtitle="{xml(subtitle)}">{xml("; ".join(notes))}</text>',
        f'<text class="button reset" x="{LEFT}" y="20">Reset</text>',
        f'<text class="button search" x="{WIDTH - LEFT}" y="20" text-anchor="end">Search</text>',
        f'<text class="status" x="{WIDTH - LEFT}" y="36" text-anchor="end" fill="#555"></text>',
        '<g class="axis">', *axis, "</g>", *body, _script(total), "</svg>", ""])
