"""The appliance's tree: the init's files, programs, template files and [packages]
entries merged, each with its source; the payload and shell checked against it."""

import os
import shutil

import pytest

from appliance.assemble import cpio, initramfs, sources
from appliance.assemble.elfclosure import ClosureError
from appliance.assemble.layout import LayoutError, Placed
from appliance.assemble.template import parse_template
from tests.conftest import ROOT

PYTHON = [Placed(cpio.file("usr/bin/python3.11", b"\x7fELF...", 0o755), "debian python3.11-minimal=3.11"),
          Placed(cpio.symlink("usr/bin/python3", "python3.11"), "debian python3-minimal=3.11")]


def template(tmp_path, extra=""):
    (tmp_path / "payload.py").write_text("print('hi')\n")
    text = ("[packages]\ndebian = ['python3-minimal']\n[init]\npayload = ['/usr/bin/python3', '/opt/payload.py']\n"
            "[[files]]\nsrc = 'payload.py'\ndst = 'opt/payload.py'\n" + extra)
    return parse_template("py", text, tmp_path, set())


def test_every_file_has_its_source(tmp_path):
    parts = initramfs.contents(template(tmp_path), b"init", {}, packages=PYTHON)
    table = {item["path"]: item for item in parts.provenance()}
    assert table["/init"]["source"] == "init" and table["/etc/appliance/init.conf"]["source"] == "init"
    assert table["/usr/bin/python3.11"] == {"path": "/usr/bin/python3.11", "in": "initrd", "kind": "file",
                                            "source": "debian python3.11-minimal=3.11", "bytes": 7}
    assert table["/usr/bin/python3"]["kind"] == "symlink" and table["/opt/payload.py"]["source"] == "template payload.py"


def test_with_a_root_disk_packages_go_on_the_disk(tmp_path):
    parts = initramfs.contents(template(tmp_path, "[rootfs]\ndisk = 'virtio-blk'\n"), b"init", {}, packages=PYTHON)
    where = {item["path"]: item["in"] for item in parts.provenance()}
    assert where["/init"] == "initrd" and where["/usr/bin/python3.11"] == "rootfs" and where["/opt/payload.py"] == "rootfs"


def test_a_payload_no_source_provides_is_one_line(tmp_path):
    with pytest.raises(LayoutError, match=r"template py: \[init\] payload '/usr/bin/python3' is not an executable file"):
        initramfs.contents(template(tmp_path), b"init", {}, packages=PYTHON[:1])
    t = parse_template("sh", "[packages]\ndebian = ['x']\n[init]\nshell = ['/bin/busybox', 'sh']\n", tmp_path, set())
    with pytest.raises(LayoutError, match=r"\[init\] shell '/bin/busybox'"):
        initramfs.contents(t, b"init", {}, packages=PYTHON)


def test_a_package_file_on_a_template_file_collides(tmp_path):
    clash = Placed(cpio.file("opt/payload.py", b"other"), "debian evil=1")
    with pytest.raises(LayoutError, match=r"template py: /opt/payload.py comes from template payload.py and from debian evil=1"):
        initramfs.contents(template(tmp_path), b"init", {}, packages=[*PYTHON, clash])


def test_host_programs_and_globs(tmp_path):
    placed = sources.host(["/usr/bin/python3", "cpio"], ["/usr/lib/python3.11/json/*.py"], "template t: [packages]")
    by_path = {p.entry.path: p for p in placed}
    real = os.path.realpath("/usr/bin/python3")
    assert by_path[real.lstrip("/")].entry.data[:4] == b"\x7fELF"
    assert by_path[real.lstrip("/")].source == "host /usr/bin/python3"
    assert by_path["usr/bin/python3"].entry.kind == "symlink"
    cpio_path = shutil.which("cpio")  # a bare name is looked up on PATH
    assert by_path[os.path.realpath(cpio_path).lstrip("/")].source == f"host {cpio_path}"
    assert "usr/lib/python3.11/json/decoder.py" in by_path
    with pytest.raises(ClosureError, match="template t: \\[packages\\]: host program 'no-such-program' not found on PATH"):
        sources.host(["no-such-program"], [], "template t: [packages]")
    with pytest.raises(ClosureError, match="host_files pattern '/no/such/\\*' matches nothing"):
        sources.host([], ["/no/such/*"], "template t: [packages]")


def test_a_library_the_loader_cannot_find_names_the_template(tmp_path):
    import subprocess

    (tmp_path / "lib.c").write_text("int f(void) { return 0; }\n")
    (tmp_path / "main.c").write_text("int f(void);\nint main(void) { return f(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libgone.so.1", "-o", str(tmp_path / "libgone.so.1"),
                    str(tmp_path / "lib.c")], check=True)
    subprocess.run(["gcc", "-o", str(tmp_path / "prog"), str(tmp_path / "main.c"), str(tmp_path / "libgone.so.1")],
                   check=True)
    (tmp_path / "libgone.so.1").unlink()
    with pytest.raises(ClosureError, match=r"^template t: \[packages\]: .*prog: library libgone.so.1 .* not found"):
        sources.host([str(tmp_path / "prog")], [], "template t: [packages]")


@pytest.mark.parametrize("link, target", [("bin", "usr/bin"), ("tmp", "var/tmp"), ("tmp", "/var/tmp"),
                                          ("dev", "/proc"), ("newroot", "/"), ("proc", "run")])
def test_an_image_with_symlinked_folders_makes_a_root_disk_tree_and_an_archive(link, target):
    """Issue 36: an image whose folders are symbolic links (usrmerge's /bin, /tmp elsewhere,
    links where the init puts its mount points), with programs in /bin and a root disk:
    the trees merge and write as archives, no CpioError."""
    template = parse_template("t", '[image]\nrootfs = "a.tar"\n[init]\npayload = ["/usr/bin/hello"]\n'
                                   'mounts = ["proc", "sysfs", "devtmpfs", "tmpfs"]\n[programs]\nbuild = ["bench"]\n'
                                   '[rootfs]\ndisk = "virtio-blk"\n', ROOT, {"bench"})
    image = [Placed(cpio.symlink(link, target), "oci:x"), Placed(cpio.directory("usr/bin"), "oci:x"),
             Placed(cpio.directory("var/tmp"), "oci:x"), Placed(cpio.directory("run"), "oci:x"),
             Placed(cpio.file("usr/bin/hello", b"\x7fELF", 0o755), "oci:x")]
    made = initramfs.contents(template, b"init", {"bench": b"\x7fELF"}, packages=image)
    assert made.disk is not None
    for tree in (made.initrd, made.disk):
        assert cpio.read(cpio.write([p.entry for p in tree]))
