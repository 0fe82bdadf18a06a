"""`appliance report`: one self-contained HTML file from a results document.

Everything is inline (CSS, SVG; no script, fonts or network), so the file can be mailed
or attached to a CI run and still open anywhere. Sections appear when the document
has their data: the phases per run (stacked bars), their distributions, the summary
table, an A/B comparison, the initcall analysis (top list and timeline), the flamechart.
"""

from __future__ import annotations

import html
import statistics
from typing import Any

from appliance import results
from appliance.analysis import analyze, bootspans, flame
from appliance.analysis.spans import Span
from appliance.markup import clean
from appliance.results import RunRecord

LEAF_PHASES = ("qemu", "firmware", "kernel", "init", "payload")
COLOURS = {"qemu": "#8da0cb", "firmware": "#fc8d62", "kernel": "#66c2a5", "init": "#e78ac3", "payload": "#a6d854",
           "rest": "#d9d9d9"}
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1250px;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .6em;text-align:right;border-bottom:1px solid #eee}
td.l,th.l{text-align:left}.warn{color:#a40}.meta{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
"""


def _esc(value: Any) -> str:
    return html.escape(clean(value))


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(ci: list[float] | None, digits: int) -> str:
    return f"{ci[0]:.{digits}f} - {ci[1]:.{digits}f}" if ci else "n/a"


def _axis(x0: float, width: float, lo: float, hi: float, y: float) -> list[str]:
    """A time axis under a plot: a line, ticks and their labels (ms), the last one kept
    inside the picture."""
    scale = width / ((hi - lo) or 1.0)
    out = [f'<line x1="{x0}" x2="{x0 + width}" y1="{y}" y2="{y}" stroke="#888"/>']
    for value in flame.ticks(lo, hi):
        x = x0 + (value - lo) * scale
        anchor = "end" if x > x0 + width - 20 else "middle"
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 4}" stroke="#888"/>'
                   f'<text x="{x:.1f}" y="{y + 15}" text-anchor="{anchor}">{value:g} ms</text>')
    return out


MIN_BAR_PX = 2.0  # a phase this narrow or less is drawn this wide (a 3.6 ms firmware phase vanished)


def stacked_bars(runs: list[RunRecord], label: str = "run") -> str:
    """One horizontal bar per run: its leaf phases end to end, the rest of total in grey,
    on a time axis in ms."""
    runs = results.counted(runs)
    if not runs:
        return "<p>no successful runs</p>"
    longest = max((results.phases_of(r).get("total") or 0.0) for r in runs) or 1.0
    width, row, left = 1000, 18, 70
    axis_y = 10 + len(runs) * row + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 20}" height="{axis_y + 66}" '
             'font-size="11" font-family="sans-serif">']
    for i, run in enumerate(runs):
        y = 10 + i * row
        x, phases = float(left), results.phases_of(run)
        parts.append(f'<text x="0" y="{y + 12}">{_esc(label)} {run["index"]}</text>')
        used = 0.0
        for phase in (*LEAF_PHASES, "rest"):
            ms = (phases.get("total") or 0.0) - used if phase == "rest" else phases.get(phase)
            if not ms or ms <= 0:
                continue
            used += ms if phase != "rest" else 0.0
            w = max(ms / longest * width, MIN_BAR_PX)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 3}" fill="{COLOURS[phase]}">'
                         f'<title>{_esc(label)} {run["index"]} {phase}: {ms:.1f} ms</title></rect>')
            x += w
    parts += _axis(left, width, 0.0, longest, axis_y)
    legend_y = axis_y + 36
    for i, phase in enumerate((*LEAF_PHASES, "rest")):
        parts.append(f'<rect x="{left + i * 110}" y="{legend_y - 10}" width="12" height="12" fill="{COLOURS[phase]}"/>'
                     f'<text x="{left + i * 110 + 16}" y="{legend_y}">{phase}</text>')
    parts.append(f'<text x="{left}" y="{legend_y + 18}" fill="#666">phases narrower than {MIN_BAR_PX:g} px are '
                 f'drawn {MIN_BAR_PX:g} px wide; their tooltips give their time</text>')
    parts.append("</svg>")
    return "".join(parts)


def scale_groups(maxima: dict[str, float], factor: float = 10.0) -> list[list[str]]:
    """Phases that can share an axis: sorted by their largest value, a new group where
    one is more than FACTOR times the group's smallest (firmware's 5 ms and the kernel's
    4 s on one axis would show neither's spread)."""
    groups: list[list[str]] = []
    base = 0.0
    for phase in sorted(maxima, key=maxima.__getitem__):
        if not groups or maxima[phase] > factor * max(base, 1e-9):
            groups.append([])
            base = maxima[phase]
        groups[-1].append(phase)
    return groups


def distributions(runs: list[RunRecord], phases: tuple[str, ...]) -> str:
    """Per phase a strip of every run's value with the median marked; phases of one
    magnitude share an axis (with ticks, in ms), so their spreads compare by eye."""
    runs = results.counted(runs)
    values = {p: sorted(results.phase_values(runs, p)) for p in phases}
    values = {p: v for p, v in values.items() if v}
    width, row, left = 900, 24, 100
    out = []
    for group in scale_groups({p: v[-1] for p, v in values.items()}):
        ordered = [p for p in phases if p in group]
        lo = min(values[p][0] for p in ordered)
        hi = max(values[p][-1] for p in ordered)
        pad = (hi - lo) * 0.03 or max(hi * 0.01, 0.1)
        lo, hi = max(0.0, lo - pad), hi + pad
        axis_y = 8 + len(ordered) * row + 2
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 20}" height="{axis_y + 24}" '
                 'font-size="11" font-family="sans-serif">']
        for i, phase in enumerate(ordered):
            y = 8 + i * row
            median = statistics.median(values[phase])
            parts.append(f'<text x="0" y="{y + 14}">{phase}</text>'
                         f'<line x1="{left}" x2="{left + width}" y1="{y + 10}" y2="{y + 10}" stroke="#eee"/>')
            for v in values[phase]:
                parts.append(f'<circle cx="{left + (v - lo) / (hi - lo) * width:.1f}" cy="{y + 10}" r="3.5" '
                             f'fill="#4477aa" fill-opacity="0.6"><title>{phase}: {v:.2f} ms</title></circle>')
            mx = left + (median - lo) / (hi - lo) * width
            parts.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{y}" y2="{y + 20}" stroke="#c00" stroke-width="2">'
                         f'<title>{phase} median {median:.2f} ms</title></line>')
        parts += _axis(left, width, lo, hi, axis_y)
        parts.append("</svg>")
        out.append("".join(parts))
    return "".join(out) + "<p class=meta>ms; red: the median; one axis per group of phases of one magnitude</p>"


def summary_table(summary: dict[str, Any]) -> str:
    head = "<tr><th class=l>phase</th><th>n</th><th>median</th><th>95% CI of median</th><th>mean</th><th>stddev</th>" \
           "<th>min</th><th>max</th></tr>"
    rows = []
    for phase, s in summary["phases"].items():
        rows.append(f"<tr><td class=l>{_esc(phase)}</td><td>{s['n']}</td><td>{_num(s['median'])}</td>"
                    f"<td>{_interval(s.get('ci95_median'), 1)}</td><td>{_num(s['mean'])}</td>"
                    f"<td>{_num(s['stddev'])}</td><td>{_num(s['min'])}</td><td>{_num(s['max'])}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table><p class=meta>times in ms</p>"


def probe_section(summary: dict[str, Any]) -> str:
    """The payload's own probes ([probes], the `probe` program): when each fired, from exec."""
    own = results.payload_probes(summary)
    if not own:
        return ""
    rows = "".join(f"<tr><td class=l>{_esc(name)}</td><td>{s['n']}</td><td>{_num(s['median'])}</td>"
                   f"<td>{_interval(s.get('ci95_median'), 1)}</td><td>{_num(s['min'])}</td><td>{_num(s['max'])}</td></tr>"
                   for name, s in own.items())
    return ("<h2>the payload's own probes</h2><table><tr><th class=l>probe</th><th>n</th><th>median</th>"
            f"<th>95% CI of median</th><th>min</th><th>max</th></tr>{rows}</table>"
            "<p class=meta>ms from QEMU's exec</p>")


def comparison_section(comparison: dict[str, Any]) -> str:
    head = "<tr><th class=l>phase</th><th>median A</th><th>median B</th><th>B/A</th><th>CI</th><th>p</th></tr>"
    rows = "".join(
        f"<tr><td class=l>{_esc(r['phase'])}</td><td>{_num(r['median_a'])}</td><td>{_num(r['median_b'])}</td>"
        f"<td>{r['ratio']:.3f}</td><td>{_interval(r['ci'], 3)}</td><td>{r['p_value']:.4f}</td></tr>"
        for r in comparison["rows"])
    verdicts = "".join(f"<li>{_esc(r['verdict'])}</li>" for r in comparison["rows"] if r["verdict"])
    return f"<table>{head}{rows}</table><ul>{verdicts or '<li>no phase differs</li>'}</ul>"


def tune_section(tune: dict[str, Any]) -> str:
    """`appliance tune`'s ranking: each knob's change in to_init and total against the base."""
    head = "<tr><th class=l>knob</th><th>to_init ms</th><th>change</th><th>95% CI</th><th>total change</th>" \
           "<th class=l>verdict</th></tr>"
    rows = []
    for r in tune.get("rows", []):
        t = r["to_init"]
        if t is None:
            rows.append(f"<tr><td class=l>{_esc(r['knob'])}</td><td>-</td><td>-</td><td>-</td><td>-</td>"
                        f"<td class=l>broke the boot: {_esc(next(iter(r['broke'])))}</td></tr>")
            continue
        verdict = ("faster" if t["ratio"] < 1 else "slower") if r.get("real") else "no real difference"
        ci = f"{(t['ci'][0] - 1) * 100:+.1f}% to {(t['ci'][1] - 1) * 100:+.1f}%" if t["ci"] else "n/a"
        total = f"{(r['total']['ratio'] - 1) * 100:+.1f}%" if r.get("total") else "-"
        rows.append(f"<tr><td class=l>{_esc(r['knob'])}</td><td>{t['median']:.1f}</td>"
                    f"<td>{(t['ratio'] - 1) * 100:+.1f}%</td><td>{ci}</td><td>{total}</td>"
                    f"<td class=l>{verdict}</td></tr>")
    combined = tune.get("combined")
    note = ""
    if combined:
        row = next(x for x in combined["comparison"]["rows"] if x["phase"] == "to_init")
        alone = combined.get("sum_alone", combined.get("sum_alone_ms", 0.0))  # sum_alone_ms: documents before clocks
        note = (f"<p>together ({_esc(combined['knob'])}): to_init {row['median_a']:.1f} -> {row['median_b']:.1f} "
                f"{_esc(combined.get('unit', 'ms'))} ({(row['ratio'] - 1) * 100:+.1f}%); the knobs alone summed to "
                f"{alone:+.1f} {_esc(combined.get('unit', 'ms'))}</p>")
    return f"<table>{head}{''.join(rows)}</table>{note}"


def kernel_section(spans: list[Span], which: str) -> str:
    """Where the kernel phase's time went in the boot WHICH names (the one the flamechart
    shows): its parts, from the kernel log's milestones, the initcalls, or the patched
    kernel's probes (whatever it had)."""
    parts = bootspans.kernel_parts(spans)
    kernel = next((s for s in spans if s.stack == ("boot", "kernel")), None)
    if kernel is None or kernel.duration_us <= 0:
        return ""
    if not parts:
        return (f"<h2>inside the kernel phase ({kernel.duration_us / 1000:.1f} ms, {_esc(which)})</h2>"
                "<p>One undivided bar: this boot left no kernel log to read (a quiet console and no profiled "
                "copy of /dev/kmsg) and its kernel has no probes of its own. To break it down: "
                "<code>appliance analyze BUNDLE</code> (boots with initcall_debug, interleaved with plain ones, "
                "and prices the measurement), a template with <code>[profiled]</code> (its kmsg copy costs the "
                "console nothing), or the minimal kernel (<code>KERNEL=minimal</code>: its probes split "
                "decompression, start_kernel and exec on every boot).</p>")
    head = "<tr><th class=l>part</th><th>start ms</th><th>ms</th><th>share</th><th class=l>from</th></tr>"
    rows = "".join(f"<tr><td class=l>{_esc(p.name)}</td><td>{(p.start_us - kernel.start_us) / 1000:.1f}</td>"
                   f"<td>{p.duration_us / 1000:.1f}</td><td>{p.duration_us / kernel.duration_us * 100:.1f}%</td>"
                   f"<td class=l>{_esc(p.note)}</td></tr>" for p in parts)
    return (f"<h2>inside the kernel phase ({kernel.duration_us / 1000:.1f} ms, {_esc(which)})</h2>"
            f"<table>{head}{rows}</table>")


def memory_section(summary: dict[str, Any]) -> str:
    """Guest memory per stage as free(1) shows it, next to QEMU's max RSS (medians, MiB)."""
    head = "<tr><th class=l>stage</th><th>total</th><th>used</th><th>free</th><th>available</th>" \
           "<th>buff/cache</th><th>shared</th></tr>"
    rows = []
    for stage, m in summary["guest_memory_kib"].items():
        cache = m["Buffers"] + m["Cached"] + m["SReclaimable"]
        cells = [m["MemTotal"], m["used_kib"], m["MemFree"], m["MemAvailable"], cache, m["Shmem"]]
        rows.append(f"<tr><td class=l>{_esc(stage)}</td>" + "".join(f"<td>{v / 1024:.1f}</td>" for v in cells) + "</tr>")
    rss = summary.get("qemu_max_rss_kib")
    note = f"<p class=meta>MiB, medians over the runs; QEMU max RSS {rss['median'] / 1024:.1f} MiB</p>" if rss else ""
    return f"<table>{head}{''.join(rows)}</table>{note}"


def analysis_section(analysis: dict[str, Any]) -> str:
    top = "".join(f"<tr><td>{i['mean_ms']:.2f}</td><td>{i['stddev_ms']:.2f}</td><td class=l>{_esc(i['kind'])}</td>"
                  f"<td class=l>{_esc(i['name'])}</td></tr>" for i in analysis["top"])
    spans = [analyze.span_from(s) for s in analysis["spans"]]
    timeline = bootspans.render_timeline(bootspans.timeline(spans))
    notes = []
    d = analysis["distortion"]
    if d.get("warning"):
        notes.append(f'<p class=warn>warning: {_esc(d["warning"])}</p>')
    for line in analyze.initcall_summary(analysis):
        notes.append(f"<p>{_esc(line.strip())}, with <code>{_esc(analysis['cmdline'])}</code></p>")
    return ("".join(notes) + "<h3>top activities</h3><table><tr><th>mean ms</th><th>stddev</th><th class=l>kind</th>"
            f"<th class=l>name</th></tr>{top}</table><h3>timeline of one boot</h3><pre>{_esc(timeline)}</pre>")


def cost_section(table: dict[str, Any], top: int = 30) -> str:
    """inspect --cost's table: every source with its bytes and what it costs, the biggest
    first, with a bar for its share of the measured total."""
    total = max(table["total_ms"], 1e-9)
    rows = []
    for row in table["sources"][:top]:
        width = 200 * row["total_ms"] / total
        rows.append(f"<tr><td class=l>{_esc(row['source'])}</td><td>{row['initrd_bytes']}</td><td>{row['root_bytes']}"
                    f"</td><td>{_num(row['unpack_ms'])}</td><td>{_num(row['load_ms'])}</td>"
                    f"<td>{_num(row['total_ms'])}</td><td class=l><svg width=202 height=10><rect width={width:.1f} "
                    f"height=10 fill='#4c78a8'/></svg></td></tr>")
    more = len(table["sources"]) - top
    measured = table.get("measured_ms")
    notes = [f"<p>unpack {_num(table['unpack_ms'] + table['needed_unpack_ms'])} ms, mount "
             f"{_num(table['mount_ms']) if table['mount_ms'] is not None else '-'} ms, the init's own work "
             f"{_num(table['init_ms'])} ms; total {_num(table['total_ms'])} ms"
             + (f" against {_num(measured)} ms measured over the init alone" if measured else "") + "</p>",
             f"<p>on an EROFS root the movable sources would save {_num(table['erofs_saving_ms'])} ms of unpack</p>",
             f"<p class=meta>{_esc(table['method'])}</p>"]
    notes += [f"<p class=warn>{_esc(note)}</p>" for note in table["notes"]]
    return ("<table><tr><th class=l>source</th><th>initrd bytes</th><th>root bytes</th><th>unpack ms</th>"
            "<th>load ms</th><th>total ms</th><th class=l>share</th></tr>" + "".join(rows) + "</table>"
            + (f"<p>... and {more} more sources</p>" if more > 0 else "") + "".join(notes))


def render(doc: dict[str, Any], source: str = "", trend: str = "") -> str:
    """The HTML text of DOC (a bench, analyze or compare results document); TREND, an
    SVG of the same appliance's history from the results store, becomes its own section."""
    side = results.main_side(doc)
    summary = results.summary(side["runs"])
    b, host = side["bundle"], side.get("host", {})
    title = f"appliance boot report: {b.get('name')}"
    body = [f"<h1>{_esc(title)}</h1>",
            f"<p class=meta>{_esc(source)} &middot; bundle {_esc(b.get('path'))} ({_esc(b.get('machine'))}, kernel "
            f"{_esc(b.get('kernel_release'))}) &middot; accel {_esc(side.get('accel', {}).get('used'))} &middot; "
            f"{_esc(host.get('cpu_model'))}, {_esc(host.get('qemu_version'))}</p>"]
    if not side.get("complete", True):
        body.append("<p class=warn>partial results: the run set was interrupted</p>")
    first = "A run" if results.kind(doc) == "compare" else "run"
    body += [f"<h2>phases per run{' of A' if first == 'A run' else ''}</h2>", stacked_bars(side["runs"], first),
             "<h2>distributions</h2>", distributions(side["runs"], (*LEAF_PHASES, "to_init", "service_ready", "total")),
             "<h2>summary</h2>", summary_table(summary), probe_section(summary)]
    if summary.get("guest_memory_kib"):
        body += ["<h2>guest memory (profiled)</h2>", memory_section(summary)]
    if results.kind(doc) == "compare":
        added = doc.get("append_b") or ""
        body += [f"<h2>comparison: B = {_esc(doc['b']['bundle']['path'])}"
                 f"{f' + <code>{_esc(added)}</code> on its command line' if added else ''} against A = "
                 f"{_esc(b.get('path'))}</h2>",
                 comparison_section(doc["comparison"]),
                 "<h2>phases per run of B</h2>", stacked_bars(doc["b"]["runs"], "B run")]
    if results.kind(doc) == "tune":
        body += ["<h2>tune: what each knob changes against the base</h2>", tune_section(doc["tune"])]
    if results.kind(doc) == "cost":
        body += ["<h2>what each part costs at boot</h2>", cost_section(doc["cost"])]
    if side.get("analysis"):
        body += ["<h2>initcall analysis</h2>", analysis_section(side["analysis"])]
    if trend:
        body += ["<h2>trend: this appliance in the results store</h2>", trend]
    spans = analyze.spans_of(side)
    which = analyze.shown_run(side)
    body.append(kernel_section(spans, which))
    if spans:
        svg = flame.render(spans, f"{b.get('name')}: {which}").split("\n", 1)[1]  # drop the XML declaration
        body += [f"<h2>flamechart ({_esc(which)})</h2>", svg]
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
