"""`appliance analyze`: boot with initcall_debug and say where the kernel's time went.

Debug boots (initcall_debug printk.time=1 ignore_loglevel) are interleaved with plain
boots of the same bundle: the plain ones give the honest phase times (and the results'
statistics), the difference between the two says what the verbose console itself cost.
The analysis (initcall statistics, one representative boot as spans, the distortion)
goes into the results document under "analysis", where report and export find it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from typing import Any

from appliance import guestlog, results
from appliance.analysis import bootspans, initcalls, sampled
from appliance.analysis.spans import Span
from appliance.assemble import minikernel
from appliance.bundle import Bundle
from appliance.errors import ApplianceError
from appliance.results import RunRecord, RunSet

DEBUG_CMDLINE = "initcall_debug printk.time=1 ignore_loglevel"
# With profiled the kernel log reaches the host through it, so the console can stay quiet
# (the UART is then not slowed by the verbose log); log_buf_len keeps every line for it.
QUIET_DEBUG_CMDLINE = "initcall_debug printk.time=1 log_buf_len=4M"
# The ftrace source: the same events into the trace buffer, nothing on the console or in
# the kernel log; profiled reads the buffer after payload_end (it needs [profiled]).
TRACE_CMDLINE = f"{initcalls.TRACE_CMDLINE} printk.time=1"
SOURCES = ("console", "ftrace")
DISTORTION_WARN = 0.05  # warn when the debug boots' kernel phase is this much longer


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def debug_cmdline(bundle: Bundle, source: str = "console") -> str:
    """What the debug boots add: initcall_debug (on a quiet console when profiled carries
    the kernel log), or for the ftrace source the initcall trace events."""
    if source == "ftrace":
        if bundle.profiled is None:
            raise ApplianceError(f"the ftrace source needs profiled to read the trace buffer: bundle {bundle.path} "
                                 "has no [profiled] (build a template with it, e.g. `appliance build profiled`)")
        return TRACE_CMDLINE
    return QUIET_DEBUG_CMDLINE if bundle.profiled is not None else DEBUG_CMDLINE


def document(bundle: Bundle, debug: list[tuple[RunRecord, str]], plain: list[RunRecord] | None,
             run_set: RunSet, source: str = "console") -> RunSet:
    """The analysis results document of boots made elsewhere (runs/debugboots.py): the
    counted DEBUG boots with their consoles, the counted PLAIN ones, and the RUN_SET
    recorded of them; what the debug boots say about the kernel's time."""
    found = summarize(debug, plain, _names(bundle), debug_cmdline(bundle, source), source)
    return results.analysis(run_set, found)


def _names(bundle: Bundle) -> Callable[[int], str | None] | None:
    """Address -> function for kernels that print addresses (no kallsyms): the minimal
    kernel's System.map, when the cache has it."""
    path = minikernel.system_map(bundle.kernel_facts)
    if path is None:
        return None
    symbols, _ = sampled.parse_symbols(path.read_text(errors="replace"))
    return symbols.lookup


def initcalls_of(bundle: Bundle, debug: list[tuple[RunRecord, str]]) -> list[list[initcalls.Initcall]]:
    """The initcalls of each debug boot (record, console) of BUNDLE, named from the
    minimal kernel's System.map where the kernel printed addresses."""
    name_of = _names(bundle)
    parsed = [initcalls.parse(kernel_text(record, console)).initcalls for record, console in debug]
    return [initcalls.symbolize(calls, name_of) for calls in parsed] if name_of is not None else parsed


def trace_text(record: RunRecord) -> str:
    """The ftrace buffer a boot's profiled sent (empty if none)."""
    raw = record.get("profiled_raw")
    return guestlog.trace_text(guestlog.parse(raw)) if raw else ""


def kernel_text(record: RunRecord, console: str) -> str:
    """The kernel log of a boot: profiled's copy of /dev/kmsg when it sent one (complete
    even with a quiet console), else the console."""
    raw = record.get("profiled_raw")
    if raw:
        text = guestlog.kernel_log_text(guestlog.parse(raw))
        if text:
            return text
    return console


def summarize(debug: list[tuple[RunRecord, str]], plain: list[RunRecord] | None,
              name_of: Callable[[int], str | None] | None = None, cmdline: str = DEBUG_CMDLINE,
              source: str = "console") -> dict[str, Any]:
    """The analysis section from the debug boots (record, console) and the plain boots;
    NAME_OF names initcalls the kernel printed as bare addresses. SOURCE says where the
    initcalls come from: the kernel log (console or profiled's copy) or the ftrace buffer."""
    debug = [(record, kernel_text(record, console)) for record, console in debug]
    parsed = [initcalls.parse_trace(trace_text(record)) if source == "ftrace" else initcalls.parse(console)
              for record, console in debug]
    for p, (_, console) in zip(parsed, debug, strict=True):
        p.console_chars = len(console)
    if name_of is not None:
        for p in parsed:
            p.initcalls = initcalls.symbolize(p.initcalls, name_of)
    kernel_debug = results.phase_values([r for r, _ in debug], "kernel")
    kernel_plain = results.phase_values(plain or [], "kernel")
    reference = _median(kernel_plain) or _median(kernel_debug) or 0.0
    stats = initcalls.aggregate([p.initcalls for p in parsed], reference)
    # the representative boot: the debug boot whose kernel phase is the median one
    order = sorted(range(len(debug)), key=lambda i: results.phases_of(debug[i][0]).get("kernel") or 0.0)
    pick = order[len(order) // 2] if order else None
    spans = bootspans.boot_spans(debug[pick][0], debug[pick][1], parsed[pick].initcalls,
                                 parsed[pick].hung) if pick is not None else []
    modules: dict[str, list[float]] = {}
    for record, _ in debug:
        for m in record.get("guest_modules", []):
            modules.setdefault(f"load {m['name']}", []).append(m["duration_ns"] / 1e6)
    leaf_phases = ("qemu", "firmware", "init", "payload")
    phases = {p: results.phase_values(plain or [r for r, _ in debug], p) for p in leaf_phases}
    return {
        "cmdline": cmdline,
        "source": source,
        "kernel_log": "profiled (/dev/kmsg)" if any(r.get("profiled_raw") for r, _ in debug) else "console",
        "boots": len(debug),
        "kernel_ms_debug": _median(kernel_debug),
        "kernel_ms_plain": _median(kernel_plain),
        "distortion": distortion(kernel_debug, kernel_plain, [p.console_chars for p in parsed],
                                 "tracing the initcalls" if source == "ftrace" else "the verbose console"),
        "initcalls": [s.__dict__ for s in stats],
        # the initcall stage as the timeline draws it: kernel_init's built-ins (`@ 1` on),
        # not the console initcalls start_kernel runs; the calls' own time, and the stage's
        "initcalls_total_ms": statistics.fmean(_calls_ms(p.initcalls) for p in parsed) if parsed else None,
        "initcall_stage_ms": statistics.fmean(_stage_ms(p.initcalls) for p in parsed) if parsed else None,
        "phases_from": "plain boots" if plain else "debug boots",
        "top": [{"kind": k, "name": nm, "mean_ms": m, "stddev_ms": sd}
                for k, nm, m, sd in bootspans.top_activities(stats, modules, phases, 20)],
        "problems": sorted({f"boot {i + 1}: {msg}" for i, p in enumerate(parsed) for msg in p.problems[:20]}),
        "unfinished": sorted({u for p in parsed for u in p.unfinished}),
        "spans": [span_dict(s) for s in spans],
    }


def _calls_ms(calls: list[initcalls.Initcall]) -> float:
    return sum(c.duration_us for c in initcalls.staged(calls)) / 1000


def _stage_ms(calls: list[initcalls.Initcall]) -> float:
    span = initcalls.stage_span(calls)
    return (span[1] - span[0]) / 1000 if span else 0.0


LOG_SOURCE = "a kernel log read from a file"
_STAMPED = re.compile(r"^\[\s*(\d+)\.(\d+)\] ", re.M)


def log_record(text: str) -> RunRecord:
    """A run record for a kernel log from anywhere (a console, `dmesg`, CI): its time
    axis is the log's own printk clock, the kernel phase from 0 to "Run /init"; a log
    without it (a boot that crashed or hung in the kernel) ends at its last stamped line
    with the event `log_end`, and no userspace is made up after it."""
    stamps = [int(m[1]) * 1e6 + int(m[2].ljust(6, "0")[:6]) for m in _STAMPED.finditer(text)]
    if not stamps:
        raise ValueError("no printk timestamps ([    1.234567] lines): boot with printk.time=1")
    anchor = bootspans.printk_anchor(text)
    end_ms = (anchor if anchor is not None else max(stamps)) / 1000
    reached = "init_start" if anchor is not None else bootspans.LOG_END
    # the log goes on after init runs (modules' initcalls, userspace's messages): to its last line
    events: list[results.Event] = [{"name": "kernel_entry", "t_ms": 0.0, "source": "log"},
              {"name": reached, "t_ms": end_ms, "source": "log"},
              {"name": "qemu_exit", "t_ms": max(max(stamps) / 1000, end_ms), "source": "log"}]
    return {"index": 0, "warmup": False, "ok": True, "events": events, "phases_ms": {"kernel": end_ms},
            "guest_probes": [], "guest_modules": []}


def summarize_logs(texts: list[str]) -> dict[str, Any]:
    """The analysis of kernel logs given as files: the same tables as `analyze`, with no
    boot of ours behind them (so nothing is said about what the console cost)."""
    out = summarize([(log_record(text), text) for text in texts], None, cmdline=LOG_SOURCE)
    out["kernel_log"] = "file"
    out["distortion"] = {"console_chars": out["distortion"]["console_chars"], "extra_ms": None, "fraction": None,
                         "warning": None}
    return out


def distortion(debug_ms: list[float], plain_ms: list[float], chars: list[int],
               what: str = "the verbose console") -> dict[str, Any]:
    """What the verbose console cost: the kernel phase with it minus without it."""
    out: dict[str, Any] = {"console_chars": int(statistics.median(chars)) if chars else None}
    if debug_ms and plain_ms:
        extra = statistics.median(debug_ms) - statistics.median(plain_ms)
        out.update(extra_ms=extra, fraction=extra / statistics.median(plain_ms))
        out["warning"] = (f"{what} made the kernel phase {extra:.0f} ms ({out['fraction'] * 100:.0f}%) "
                          "longer: initcall times include their own printing; compare shares, not absolute times"
                          if out["fraction"] > DISTORTION_WARN else None)
    else:
        out.update(extra_ms=None, fraction=None,
                   warning="no plain boots to compare with: the console's own cost is unknown (drop --no-baseline)")
    return out


def span_dict(span: Span) -> dict[str, Any]:
    return {"track": span.track, "stack": list(span.stack), "start_us": span.start_us, "end_us": span.end_us,
            "kind": span.kind, "note": span.note}


def span_from(data: dict[str, Any]) -> Span:
    return Span(data["track"], tuple(data["stack"]), data["start_us"], data["end_us"], data.get("kind", ""),
                data.get("note", ""))


def median_run(doc: RunSet) -> RunRecord | None:
    """The counted run with the median total: the one a single-boot view shows."""
    runs = results.counted(doc.get("runs", []))
    runs.sort(key=lambda r: results.phases_of(r).get("total") or 0.0)
    return runs[len(runs) // 2] if runs else None


def shown_run(doc: RunSet) -> str:
    """Which boot spans_of(DOC) draws, in words: the one view names it everywhere."""
    analysis = doc.get("analysis")
    if analysis and analysis.get("spans"):
        return "the initcall_debug boot with the median kernel phase"
    run = median_run(doc)
    return f"run {run['index']}, the one with the median total" if run is not None else "no run"


def spans_of(doc: RunSet) -> list[Span]:
    """The analysis spans of a results document, or spans of its median run's phases
    (with profiled's process timeline when it has one)."""
    analysis = doc.get("analysis")
    if analysis and analysis.get("spans"):
        return [span_from(s) for s in analysis["spans"]]
    run = median_run(doc)
    if run is None:
        return []
    log = kernel_text(run, "")  # profiled's copy of the kernel log, when the boot sent one
    return bootspans.boot_spans(run, log, initcalls.parse(log).initcalls if log else [])


def counters_of(doc: RunSet) -> list[tuple[str, float, dict[str, float]]]:
    run = median_run(doc)
    return bootspans.memory_counters(run) if run else []


def initcall_summary(analysis: dict[str, Any]) -> list[str]:
    """The initcall stage in numbers, the same ones the timeline draws (means over the boots)."""
    total, stage = analysis.get("initcalls_total_ms"), analysis.get("initcall_stage_ms")
    kernel = analysis.get("kernel_ms_debug")
    if total is None or not kernel:
        return []
    line = f"\nbuilt-in initcalls: {total:.0f} ms in the calls ({total / kernel * 100:.0f}% of a {kernel:.0f} ms kernel phase)"
    if stage:
        line += (f"; the stage from the first `@ 1` call to the last return {stage:.0f} ms "
                 f"({stage / kernel * 100:.0f}%), console printing between calls included")
    return [line + f"; mean over {analysis['boots']} boot(s)"]


def render(analysis: dict[str, Any], color: bool = False, top: int = 15) -> str:
    """The timeline of the representative boot, then the top-N activities across boots."""
    spans = [span_from(s) for s in analysis["spans"]]
    heading = (f"timeline of the log (printk time; the median kernel phase of {analysis['boots']} log(s)):"
               if analysis["cmdline"] == LOG_SOURCE else
               f"timeline of one boot (the median kernel phase of {analysis['boots']} boots with {analysis['cmdline']}):")
    lines = [heading, bootspans.render_timeline(bootspans.timeline(spans), color), ""]
    stopped = next((s for s in spans if s.name == "stopped" and s.kind == "event"), None)
    if stopped is not None:  # a log of a boot that never ran init: where and why the picture ends
        lines[-1:] = [f"STOPPED at {stopped.start_us / 1000:.1f} ms: {stopped.note}", ""]
    over = "logs" if analysis["cmdline"] == LOG_SOURCE else "debug boots"
    phases_from = analysis.get("phases_from", over)
    lines.append(f"top {top} activities (mean over the {over}"
                 f"{f'; phases over the {phases_from}' if phases_from != over else ''}):")
    lines.append(f"{'mean ms':>9} {'stddev':>8}  {'kind':<9} name")
    for item in analysis["top"][:top]:
        lines.append(f"{item['mean_ms']:9.2f} {item['stddev_ms']:8.2f}  {item['kind']:<9} {item['name']}")
    lines += initcall_summary(analysis)
    d = analysis["distortion"]
    if d.get("extra_ms") is not None:
        lines.append(f"cost of the {analysis.get('source', 'console')} source: debug boots' kernel phase "
                     f"{d['extra_ms']:+.0f} ms ({d['fraction'] * 100:+.1f}%) "
                     f"against plain boots; {d['console_chars']} characters of kernel log "
                     f"(read from {analysis.get('kernel_log', 'console')})")
    if d.get("warning"):
        lines.append(f"warning: {d['warning']}")
    for problem in analysis["problems"][:10]:
        lines.append(f"warning: {problem}")
    if analysis["unfinished"]:
        lines.append(f"warning: initcalls that never returned: {', '.join(analysis['unfinished'][:10])}")
    return "\n".join(lines)

