"""Spans out to the formats other tools open: Chrome Trace Event JSON (Perfetto UI,
chrome://tracing) and speedscope's evented profile. Both are plain data; the checks
below are the rules those viewers rely on, used by the tests and before writing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from appliance.analysis.spans import Span, ordered

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _open_close(spans: list[Span]) -> list[tuple[float, int, int, Span]]:
    """(time, 1 open / 0 close, tie-break, span), sorted so that at one instant closes
    come before opens, deeper frames close first and shallower frames open first: the
    order in which a stack-based viewer can replay them."""
    events = []
    for s in spans:
        events.append((s.start_us, 1, s.depth, s))
        events.append((s.end_us, 0, -s.depth, s))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return events


Counter = tuple[str, float, dict[str, float]]  # (name, time us, series -> value)


# Boot spans of these kinds get a trace track of their own (Perfetto shows one row each).
KIND_TRACKS = {"initcall": "initcalls", "module": "module loads", "payload": "payload"}


def _trace_track(span: Span) -> str:
    return KIND_TRACKS.get(span.kind, span.track)


def chrome_trace(spans: Iterable[Span], process: str = "boot", counters: Iterable[Counter] = ()) -> dict[str, Any]:
    """One process; one thread per span track, and per kind for initcalls, module loads
    and the payload (KIND_TRACKS); balanced B/E pairs for spans, an instant (ph i) for
    zero-length events, and COUNTERS as counter tracks (ph C, e.g. guest memory).
    Timestamps in microseconds."""
    items = ordered(spans)
    tids = {track: i + 1 for i, track in enumerate(dict.fromkeys(_trace_track(s) for s in items))}
    events: list[dict[str, Any]] = [{"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": process}}]
    for track, tid in tids.items():
        events.append({"ph": "M", "pid": 1, "tid": tid, "name": "thread_name", "args": {"name": track}})
        events.append({"ph": "M", "pid": 1, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    for track, tid in tids.items():
        mine = [s for s in items if _trace_track(s) == track]
        for s in mine:
            if s.duration_us <= 0:
                events.append({"ph": "i", "s": "t", "pid": 1, "tid": tid, "ts": s.start_us, "name": s.name,
                               "cat": s.kind or "span", "args": {"note": s.note} if s.note else {}})
        for at, is_open, _, s in _open_close([s for s in mine if s.duration_us > 0]):
            event: dict[str, Any] = {"ph": "B" if is_open else "E", "pid": 1, "tid": tid, "ts": at, "name": s.name,
                                     "cat": s.kind or "span"}
            if s.note:  # on B and E alike: speedscope pairs them by name and args, and renames a mismatch
                event["args"] = {"note": s.note}
            events.append(event)
    for name, at, values in sorted(counters, key=lambda c: c[1]):
        events.append({"ph": "C", "pid": 1, "tid": 0, "ts": at, "name": name, "args": values})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def speedscope(spans: Iterable[Span], name: str = "boot") -> dict[str, Any]:
    """An evented speedscope profile per track: O(pen)/C(lose) frame events in time
    order, properly nested (a child closes before its parent; ties broken that way)."""
    items = [s for s in ordered(spans) if s.duration_us > 0]
    frames: list[dict[str, str]] = []
    index: dict[str, int] = {}
    profiles = []
    for track in dict.fromkeys(s.track for s in items):
        mine = [s for s in items if s.track == track]
        for s in mine:
            if s.name not in index:
                index[s.name] = len(frames)
                frames.append({"name": s.name})
        start = min(s.start_us for s in mine)
        end = max(s.end_us for s in mine)
        profiles.append({"type": "evented", "name": track, "unit": "microseconds", "startValue": start,
                         "endValue": end,
                         "events": [{"type": "O" if is_open else "C", "at": at, "frame": index[s.name]}
                                    for at, is_open, _, s in _open_close(mine)]})
    return {"$schema": SPEEDSCOPE_SCHEMA, "shared": {"frames": frames}, "profiles": profiles, "name": name,
            "exporter": "appliance", "activeProfileIndex": 0}


def check_speedscope(doc: dict[str, Any]) -> list[str]:
    """The rules speedscope enforces on evented profiles: known frames, times within the
    profile and never decreasing, every O closed by a C of the same frame in stack order."""
    problems = []
    nframes = len(doc["shared"]["frames"])
    for profile in doc["profiles"]:
        stack: list[int] = []
        last = profile["startValue"]
        for event in profile["events"]:
            if not 0 <= event["frame"] < nframes:
                problems.append(f"{profile['name']}: unknown frame {event['frame']}")
            if event["at"] < last or event["at"] > profile["endValue"]:
                problems.append(f"{profile['name']}: event at {event['at']} out of order or range")
            last = event["at"]
            if event["type"] == "O":
                stack.append(event["frame"])
            elif not stack or stack.pop() != event["frame"]:
                problems.append(f"{profile['name']}: C of frame {event['frame']} does not close the open one")
        if stack:
            problems.append(f"{profile['name']}: {len(stack)} frames never closed")
    return problems


def check_chrome_trace(doc: dict[str, Any]) -> list[str]:
    """Every event has the fields its phase needs; B/E balance per thread, each E ending
    the innermost open B of the same name, in time order."""
    problems = []
    open_be: dict[int, list[str]] = {}
    last: dict[int, float] = {}
    for event in doc["traceEvents"]:
        ph = event.get("ph")
        if ph in ("B", "E"):
            if event["ts"] < last.get(event["tid"], float("-inf")):
                problems.append(f"{event['name']}: B/E out of time order on thread {event['tid']}")
            last[event["tid"]] = event["ts"]
        if ph in ("X", "B", "E", "i") and not isinstance(event.get("ts"), (int, float)):
            problems.append(f"{event.get('name')}: no timestamp")
        if ph == "X" and event.get("dur", -1) < 0:
            problems.append(f"{event.get('name')}: negative duration")
        if ph == "B":
            open_be.setdefault(event["tid"], []).append(event["name"])
        if ph == "E" and not open_be.get(event["tid"]):
            problems.append(f"E without B on thread {event['tid']}")
        elif ph == "E" and open_be[event["tid"]].pop() != event["name"]:
            problems.append(f"E of {event['name']} does not end the innermost B on thread {event['tid']}")
    problems += [f"thread {tid}: {len(names)} B events never ended" for tid, names in open_be.items() if names]
    return problems
