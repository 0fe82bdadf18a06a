"""`scons appliance` for real: outputs, reproducibility, and what a change rebuilds."""

import json
import shutil
from pathlib import Path

import pytest

from appliance import bundle
from appliance.assemble import compress, cpio
from tests.conftest import BUILD, ROOT, appliance, scons

pytestmark = pytest.mark.boot


def test_bundle_contents(built):
    folder = built["benchmark"]
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["format"] == bundle.FORMAT and manifest["machine"] == "microvm"
    assert set(manifest["files"]) == {"kernel", "initrd"}
    assert "console=ttyS0" in manifest["cmdline"] and "quiet" in manifest["cmdline"]
    names = {e.path: e for e in cpio.read(compress.decompress((folder / "initrd").read_bytes()))}
    assert {"init", "dev/console", "bin/bench", "etc/appliance/init.conf"} <= set(names)
    assert names["dev/console"].kind == "chardev"
    assert names["init"].data.startswith(b"\x7fELF")
    assert b"payload /bin/bench" in names["etc/appliance/init.conf"].data
    sizes = manifest["build"]["initrd"]["programs"]
    assert sizes["init"] == len(names["init"].data) and 1000 < sizes["init"] < 32768
    assert sizes["bin/bench"] == len(names["bin/bench"].data)


def test_noop_rebuild_does_nothing(built):
    done = scons("appliance")
    assert done.returncode == 0
    assert "is up to date" in done.stdout


def rebuilt(output: str) -> set[str]:
    return {Path(line.split("-> ", 1)[1]).name for line in output.splitlines() if " -> " in line}


def test_changing_init_rebuilds_init_initrd_and_bundle_only(built, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "build"))
    assert scons("appliance", cwd=tree).returncode == 0
    assert "is up to date" in scons("appliance", cwd=tree).stdout
    init = tree / "recipes" / "programs" / "init.c"
    source = init.read_text()
    init.write_text(source + "\n/* a comment */\n")
    done = scons("appliance", cwd=tree)  # same binary: SCons stops at init
    assert rebuilt(done.stdout) == {"init"}
    init.write_text(source.replace("ignored config line: ", "unknown config line: "))
    done = scons("appliance", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert rebuilt(done.stdout) == {"init", "initrd", "bundle.json"}


def test_two_builds_give_identical_initrds(built, tmp_path):
    again = tmp_path / "tree"
    shutil.copytree(ROOT, again, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "build"))
    assert scons("appliance", cwd=again).returncode == 0
    assert (again / "build/benchmark/initrd").read_bytes() == (built["benchmark"] / "initrd").read_bytes()


def test_bad_template_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[appliance]\ncolour = 'red'\n")
    done = scons("appliance", f"TEMPLATE={bad}")
    assert done.returncode != 0
    assert "error: template bad: unknown key 'colour' in [appliance]" in done.stderr
    assert "Traceback" not in done.stderr


def test_release_archive_is_reproducible_and_verifies(built, tmp_path):
    assert scons("release").returncode == 0
    ours = BUILD / "release/benchmark/benchmark.tar.zst"
    again = tmp_path / "tree"
    shutil.copytree(ROOT, again, ignore=shutil.ignore_patterns(".venv", ".git", "build", "__pycache__"))
    assert scons("release", cwd=again).returncode == 0
    assert (again / "build/release/benchmark/benchmark.tar.zst").read_bytes() == ours.read_bytes()
    # the UKI too: systemd's stub, the kernel, the initrd and a PC's command line, the same bytes
    efi = BUILD / "release/benchmark/benchmark.efi"
    assert (again / "build/release/benchmark/benchmark.efi").read_bytes() == efi.read_bytes()
    assert efi.read_bytes()[:2] == b"MZ" and "  benchmark.efi\n" in (BUILD / "release/benchmark/SHA256SUMS").read_text()
    assert appliance("verify", str(ours)).returncode == 0
    booted = appliance("run", str(ours), "--accel", "tcg")  # run and bench take the archive itself
    assert booted.returncode == 0 and "appliance-probe: payload_end" in booted.stdout, booted.stderr
    sums = (BUILD / "release/benchmark/SHA256SUMS").read_text()
    assert sums.endswith("  benchmark.tar.zst\n")
    tampered = tmp_path / "benchmark.tar.zst"
    data = bytearray(ours.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    done = appliance("verify", str(tampered))  # the archive's own zstd checksum catches it first
    assert done.returncode == 1
    assert done.stderr.strip().endswith("Restored data doesn't match checksum): it is truncated or damaged")


def test_release_iso_boots_with_cdrom_and_verifies(built, tmp_path):
    assert scons("release").returncode == 0
    iso = BUILD / "release/benchmark/benchmark.iso"
    assert appliance("verify", str(iso)).returncode == 0
    assert f"{iso.name}\n" in (BUILD / "release/benchmark/SHA256SUMS").read_text()
    done = appliance("run", str(iso), "--accel", "tcg")
    assert done.returncode == 0, done.stderr
    for probe in ("init_start", "payload_start", "work_done", "payload_end"):
        assert f"appliance-probe: {probe} " in done.stdout
    tampered = tmp_path / "benchmark.iso"
    data = bytearray(iso.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the kernel, the largest file
    tampered.write_bytes(bytes(data))
    done = appliance("verify", str(tampered))
    assert done.returncode == 1 and "kernel does not match its sha256 in bundle.json" in done.stderr


def test_variants_get_their_own_folders_and_both_verify(built):
    done = scons("appliance", "TEMPLATE=minimal", "MACHINE=pc-seabios")
    assert done.returncode == 0, done.stderr
    variant = BUILD / "minimal+pc-seabios"
    assert f"bundle {variant} ready" in done.stdout
    assert bundle.load(variant).machine.value == "pc-seabios"
    assert bundle.load(built["minimal"]).machine.value == "microvm"  # the template as written, untouched
    for folder in (variant, built["minimal"]):
        assert appliance("verify", str(folder)).returncode == 0


def test_template_given_by_absolute_path_with_files_builds(tmp_path):
    (tmp_path / "motd").write_text("hello from the template\n")
    template = tmp_path / "withfiles.toml"
    template.write_text('[[files]]\nsrc = "motd"\ndst = "etc/motd"\n')
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stderr
    names = {e.path: e for e in cpio.read(compress.decompress((BUILD / "withfiles" / "initrd").read_bytes()))}
    assert names["etc/motd"].data == b"hello from the template\n"


@pytest.mark.parametrize("setting, message", [
    ("KERNEL=/etc/passwd", "error: KERNEL=/etc/passwd is not a kernel image"),
    ("KERNEL=/etc", "error: KERNEL=/etc is a directory"),
])
def test_a_kernel_that_is_not_one_is_refused_before_anything_is_built(setting, message):
    done = scons("appliance", "TEMPLATE=minimal", setting)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def test_kernel_entry_pvh_bakes_the_decompressed_kernel_into_the_bundle(tmp_path):
    from appliance.assemble import kernelfetch

    template = tmp_path / "pvhboot.toml"
    template.write_text((ROOT / "rootfs_templates" / "minimal.toml").read_text()
                        .replace('compression = "zstd"', 'compression = "zstd"\nkernel_entry = "pvh"'))
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stdout + done.stderr
    image = (BUILD / "pvhboot" / "kernel").read_bytes()
    assert kernelfetch.image_kind(image[:0x1000]) == "elf" and kernelfetch.has_pvh_note(image)
    facts = json.loads((BUILD / "pvhboot" / "bundle.json").read_text())["build"]["kernel"]
    assert facts["entry"] == "pvh"
    done = appliance("run", str(BUILD / "pvhboot"), "--accel", "tcg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "appliance-probe: init_start" in done.stdout


def test_a_second_build_of_one_build_dir_waits_for_the_first(built):
    """Two builds into one BUILD_DIR collided on their temporary files; now the second
    waits for the first's lock, says so, and then builds."""
    import subprocess

    from appliance.fsutil import locked
    from tests.conftest import SCONS

    with locked(BUILD / ".appliance.lock", "the test, standing in for a first build"):
        second = subprocess.Popen([SCONS, "-Q", f"BUILD_DIR={BUILD}", "appliance", "TEMPLATE=minimal"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = second.stderr.readline()
        assert line.startswith("waiting: another build is writing"), line
        assert second.poll() is None  # still waiting while we hold it
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err


def test_cleaning_the_cache_is_refused_while_a_build_uses_it(tmp_path):
    from appliance.assemble import cache
    from appliance.fsutil import locked

    env_cache = tmp_path / "cache"
    (env_cache / "debs").mkdir(parents=True)
    (env_cache / "debs" / "old.deb").write_bytes(b"x")
    with locked(env_cache / cache.LOCK, "a build", shared=True):  # what a running build holds
        done = appliance("cache", "--all", env={"APPLIANCE_CACHE": str(env_cache)})
    assert done.returncode == 1
    assert "cannot clean the cache now: a build is using the cache" in done.stderr
    assert (env_cache / "debs" / "old.deb").is_file()
    done = appliance("cache", "--all", env={"APPLIANCE_CACHE": str(env_cache)})
    assert done.returncode == 0 and not (env_cache / "debs" / "old.deb").exists()


def test_changing_the_code_that_makes_an_artifact_rebuilds_it(built, tmp_path):
    """An upgrade of the tool (here: a change to the cpio writer) must not leave old
    outputs that look current."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "build"))
    assert scons("appliance", cwd=tree).returncode == 0
    cpio_py = tree / "appliance" / "assemble" / "cpio.py"
    cpio_py.write_text(cpio_py.read_text() + "\n# a change\n")
    done = scons("appliance", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert rebuilt(done.stdout) == {"initrd"}  # the same bytes again: SCons stops there, the bundle is current
    assert "is up to date" in scons("appliance", cwd=tree).stdout


def test_build_dir_in_the_environment_is_where_scons_builds(tmp_path):
    import os
    import subprocess

    from tests.conftest import SCONS

    done = subprocess.run([SCONS, "-Q", "appliance", "TEMPLATE=minimal"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "BUILD_DIR": str(tmp_path / "out")})
    assert done.returncode == 0, done.stderr
    assert bundle.load(tmp_path / "out" / "minimal").name == "minimal"
