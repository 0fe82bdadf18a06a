"""A sample boot for the analysis tests: Debian's console with initcall_debug, and a run record of it."""

from appliance.analysis import bootspans, initcalls
from appliance.analysis.spans import Span
from tests.conftest import DATA

CONSOLE = (DATA / "initcall-debian-disk.console").read_text()


def run_record(index=1, kernel_extra=0.0):
    events = [("qemu_exec", 0.0), ("fw_entry", 40.0), ("kernel_entry", 43.0), ("init_start", 5150.0 + kernel_extra),
              ("init_modules_loaded", 5380.0 + kernel_extra), ("payload_start", 5410.0 + kernel_extra),
              ("payload_end", 5450.0 + kernel_extra), ("qemu_exit", 5490.0 + kernel_extra)]
    phases = {"qemu": 40.0, "firmware": 3.0, "kernel": 5107.0 + kernel_extra, "init": 260.0, "payload": 40.0,
              "to_init": 5150.0 + kernel_extra, "total": 5490.0 + kernel_extra}
    return {"index": index, "warmup": False, "ok": True, "events": [{"name": n, "t_ms": t} for n, t in events],
            "phases_ms": phases, "guest_probes": [{"name": "init_start", "boottime_ns": 1_695_015_769}],
            "guest_modules": [{"name": "ext4", "start_ns": 1_800_000_000, "duration_ns": 40_000_000}]}


def boot() -> list[Span]:
    return bootspans.boot_spans(run_record(), CONSOLE, initcalls.parse(CONSOLE).initcalls)
