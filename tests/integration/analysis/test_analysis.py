"""Where the time goes, on real boots under TCG: initcall analysis of the Debian kernel,
the exports it writes, the HTML report rendered by headless Chromium, the gdbstub
sampling profiler on the minimal kernel, and the tslog verb."""

import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from appliance.analysis import exports
from tests.conftest import ROOT, appliance

pytestmark = pytest.mark.boot
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def analysis(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    done = appliance("analyze", str(built["benchmark"]), "-n", "2", "--accel", "tcg", "-o", str(out / "a.json"),
                     "--svg", str(out / "a.svg"), "--chrome", str(out / "a.trace.json"),
                     "--speedscope", str(out / "a.speedscope.json"), "--collapsed", str(out / "a.folded"),
                     timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_analyze_finds_the_debian_kernels_initcalls(analysis):
    out, stdout = analysis
    doc = json.loads((out / "a.json").read_text())
    a = doc["analysis"]
    assert a["boots"] == 2 and a["problems"] == [] and a["unfinished"] == []
    assert len(a["initcalls"]) > 500  # the Debian kernel runs ~670 built-in initcalls
    # every initcall once a boot, or (blake2s_mod_init: two modules' init functions share the
    # name) a whole multiple of the boots
    assert all(s["n"] % a["boots"] == 0 for s in a["initcalls"])
    assert sum(s["n"] == 2 for s in a["initcalls"][:20]) >= 18
    assert a["distortion"]["extra_ms"] is not None and a["distortion"]["console_chars"] > 50_000
    assert "timeline of one boot" in stdout and "<- longest" in stdout
    assert "cost of the console source:" in stdout
    # the plain boots are the results' runs: the analysis' debug cmdline is not in them
    assert doc["settings"]["extra_cmdline"] == ""


def test_analyze_exports_satisfy_their_formats(analysis):
    out, _ = analysis
    chrome = json.loads((out / "a.trace.json").read_text())
    assert exports.check_chrome_trace(chrome) == []
    # every initcall is there: as a B/E pair, or as an instant when it took no time on the
    # printk clock (which moves in 4 ms steps when a busy host makes the guest drop its TSC)
    assert sum(e["ph"] in ("B", "i") for e in chrome["traceEvents"]) > 600
    speedscope = json.loads((out / "a.speedscope.json").read_text())
    assert exports.check_speedscope(speedscope) == []
    ET.parse(out / "a.svg")
    folded = (out / "a.folded").read_text().splitlines()
    assert any(line.startswith("boot;kernel;initcalls;") for line in folded)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _screenshot(chromium: str, page: Path, png: Path) -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,2400", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)


def test_report_renders_in_headless_chromium(analysis, tmp_path):
    out, _ = analysis
    report = tmp_path / "report.html"
    done = appliance("report", str(out / "a.json"), "-o", str(report))
    assert done.returncode == 0, done.stderr
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: run ./setup"
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    _screenshot(chromium, report, tmp_path / "report.png")
    _screenshot(chromium, blank, tmp_path / "blank.png")
    assert _png_size(tmp_path / "report.png") == (1280, 2400)
    # a drawn page compresses far worse than an empty one
    assert (tmp_path / "report.png").stat().st_size > 5 * (tmp_path / "blank.png").stat().st_size
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "initcall analysis" in dom and "<svg" in dom and "flamechart" in dom


def test_gdbstub_profiler_samples_a_real_boot(minimal_kernel_bundle, tmp_path):
    done = appliance("profile", str(minimal_kernel_bundle), "--accel", "tcg", "--interval-ms", "2",
                     "--collapsed", str(tmp_path / "p.folded"), "--svg", str(tmp_path / "p.svg"),
                     "--speedscope", str(tmp_path / "p.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    samples = int(done.stdout.split(" samples", 1)[0])
    assert samples > 50
    folded = (tmp_path / "p.folded").read_text().splitlines()
    assert sum(int(line.rsplit(" ", 1)[1]) for line in folded) == samples
    known = sum(int(line.rsplit(" ", 1)[1]) for line in folded if "[unknown]" not in line)
    assert known > 0.9 * samples  # the System.map names what the vCPU was running
    assert any(line.startswith("kernel;") and "start_kernel" not in line for line in folded)
    ET.parse(tmp_path / "p.svg")
    assert exports.check_speedscope(json.loads((tmp_path / "p.json").read_text())) == []


def test_profile_without_symbols_says_what_to_do(built):
    done = appliance("profile", str(built["benchmark"]), "--accel", "tcg")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: no symbols for this kernel: give --symbols")


def test_tslog_verb_on_a_dump(tmp_path):
    done = appliance("tslog", str(DATA / "tslog-handmade.txt"), "--tsc-hz", "1e9", "--svg", str(tmp_path / "t.svg"),
                     "--collapsed", str(tmp_path / "t.folded"))
    assert done.returncode == 0, done.stderr
    assert "(truncated)" in done.stdout and "warning: truncated" in done.stderr
    root = ET.parse(tmp_path / "t.svg").getroot()
    assert any((t.text or "").startswith("tslog-handmade.txt boot (") for t in root.iter("{http://www.w3.org/2000/svg}text"))
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    bad = appliance("tslog", str(empty), "--tsc-hz", "1e9", "--svg", str(tmp_path / "x.svg"))
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "x.svg").exists()
