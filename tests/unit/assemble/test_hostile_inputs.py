"""What a careless or hostile template may not get past the build: files that lead out
of the template's folder, special files, secrets of the host, non-programs, cut kernels;
and the permission bits a file keeps."""

import os

import pytest

from appliance.assemble import elfclosure, kernelfetch, sources
from appliance.assemble.template import parse_template
from appliance.errors import KernelError, TemplateError


def files_template(tmp_path, src, mode=""):
    return parse_template("t", f'[[files]]\nsrc = "{src}"\ndst = "etc/x"\n{mode}', tmp_path)


@pytest.mark.parametrize("make", [
    lambda d: os.symlink("/etc/passwd", d / "x"),  # the file itself
    lambda d: (os.symlink("/etc", d / "dir"), "dir/passwd")[1],  # a folder on its way
    lambda d: ((d / "inner").mkdir(), os.symlink("../../outside", d / "inner" / "x"), "inner/x")[2],
])
def test_a_template_file_that_leads_out_of_its_folder_is_refused(tmp_path, make):
    folder = tmp_path / "template"
    folder.mkdir()
    (tmp_path / "outside").write_text("secret")
    src = make(folder) or "x"
    with pytest.raises(TemplateError, match="leads out of the template's folder"):
        files_template(folder, src)


def test_a_link_inside_the_folder_is_followed(tmp_path):
    (tmp_path / "real").write_text("hi")
    os.symlink("real", tmp_path / "x")
    assert files_template(tmp_path, "x").files[0].src == "x"


def test_a_template_file_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TemplateError, match="is not a regular file"):
        files_template(tmp_path, "fifo")


@pytest.mark.parametrize("bits", [0o600, 0o755, 0o640])
def test_a_template_file_keeps_its_permission_bits_unless_told(tmp_path, bits):
    (tmp_path / "x").write_text("data")
    os.chmod(tmp_path / "x", bits)
    assert files_template(tmp_path, "x").files[0].mode == bits
    assert files_template(tmp_path, "x", "mode = 0o444\n").files[0].mode == 0o444


@pytest.mark.parametrize("path, message", [
    ("/proc/self/environ", "is under /proc, the host's live state"),
    ("/dev/zero", "is under /dev"),
    ("/sys/kernel/notes", "is under /sys"),
])
def test_host_files_under_the_hosts_live_filesystems_are_refused(path, message):
    with pytest.raises(elfclosure.ClosureError, match=message):
        sources.host((), (path,), "template t")


def test_host_files_that_are_not_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # reading it would block the build forever
    with pytest.raises(elfclosure.ClosureError, match="is a FIFO: only regular files, directories and symlinks"):
        sources.host((), (str(tmp_path / "fifo"),), "template t")
    (tmp_path / "tree").mkdir()
    os.mkfifo(tmp_path / "tree" / "inside")  # inside a folder that is taken whole
    with pytest.raises(elfclosure.ClosureError, match="is a FIFO"):
        sources.host((), (str(tmp_path / "tree"),), "template t")


def test_a_host_file_only_root_can_read_is_taken_with_a_warning(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.write_text("x")
    os.chmod(secret, 0o600)
    if secret.stat().st_uid != 0:
        pytest.skip("needs a file owned by root")
    placed = sources.host((), (str(secret),), "template t")
    assert [p.entry.path for p in placed] == [str(secret).lstrip("/")]
    assert "is readable only by root (mode 0600)" in capsys.readouterr().err


def test_a_host_program_that_is_not_elf_is_refused(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    with pytest.raises(elfclosure.ClosureError, match="is not an ELF program: list scripts and data in host_files"):
        sources.host((str(script),), (), "template t")


def bzimage(setup_sects: int, syssize: int, size: int) -> bytes:
    data = bytearray(size)
    data[0x1F1] = setup_sects
    data[0x1F4:0x1F8] = syssize.to_bytes(4, "little")
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def test_a_kernel_image_cut_short_is_refused(tmp_path):
    whole = bzimage(4, 1000, (4 + 1) * 512 + 1000 * 16)
    assert kernelfetch.truncated(whole[:65536], len(whole)) is None
    (tmp_path / "bzImage").write_bytes(whole[:8000])
    with pytest.raises(KernelError, match="is cut short: 8000 bytes, its setup header says 18560"):
        kernelfetch.own_kernel(tmp_path / "bzImage")
    # the one rule, for KERNEL= and for an image's own kernel alike
    assert kernelfetch.image_problem(whole[:8000], 8000) == "cut short: 8000 bytes, its setup header says 18560"
    assert kernelfetch.image_problem(whole[:65536], len(whole)) is None
    assert kernelfetch.image_problem(b"text", 4).startswith("not a kernel image")


def test_an_elf_kernel_cut_short_is_refused():
    head = bytearray(0x40 + 0x38)
    head[:4], head[4] = b"\x7fELF", 2
    head[0x20:0x28] = (0x40).to_bytes(8, "little")  # program headers right after the ELF header
    head[0x36:0x38], head[0x38:0x3A] = (0x38).to_bytes(2, "little"), (1).to_bytes(2, "little")
    head[0x40 + 0x08:0x40 + 0x10] = (0x1000).to_bytes(8, "little")  # p_offset
    head[0x40 + 0x20:0x40 + 0x28] = (0x5000).to_bytes(8, "little")  # p_filesz
    assert kernelfetch.truncated(bytes(head), 0x6000) is None
    assert kernelfetch.truncated(bytes(head), 0x3000) == f"{0x3000} bytes, its segments end at {0x6000}"


def test_a_lock_is_only_what_its_request_brings_in():
    from appliance.assemble import pkglock
    from appliance.assemble.apt import Pin

    pins = tuple(Pin(n, "1.0", "amd64", "a" * 64) for n in ("python3-minimal", "libpython3", "libc6", "mawk", "evil"))
    control = {"python3-minimal": {"Depends": "libpython3 (= 1.0), libc6 (>= 2.36)", "Pre-Depends": "awk | gawk"},
               "libpython3": {"Depends": "libc6"}, "libc6": {}, "mawk": {"Provides": "awk"}, "evil": {}}
    lock = pkglock.Lock(("python3-minimal",), pins)
    assert pkglock.unasked(lock, control) == ["evil"]  # reached by nothing: added by hand
    assert pkglock.unasked(pkglock.Lock(("python3-minimal", "evil"), pins), control) == []


@pytest.mark.parametrize("pin, message", [
    (dict(name="../../../../tmp/x"), "is not a Debian package name"),
    (dict(name="Foo"), "is not a Debian package name"),
    (dict(version="1.0/../../x"), "not a Debian version"),
    (dict(arch="amd64/.."), "has architecture"),
    (dict(sha256="abc"), "has no valid sha256"),
])
def test_a_lock_whose_names_would_make_paths_is_refused(tmp_path, pin, message):
    from appliance.assemble import pkglock
    from appliance.assemble.apt import PackageError, Pin

    fields = {"name": "busybox-static", "version": "1:1.35.0-4+b3", "arch": "amd64", "sha256": "a" * 64, **pin}
    text = pkglock.dumps(pkglock.Lock(("busybox-static",), (Pin(**fields, size=1, filename="pool/x.deb"),)), "t")
    with pytest.raises(PackageError, match=message):
        pkglock.loads(text, "t.lock")


def test_no_cache_path_leaves_the_cache(tmp_path):
    from appliance.assemble import apt

    with pytest.raises(apt.PackageError, match="would be stored outside"):
        apt.cached_deb(apt.Pin("x/../../y", "1", "amd64", "a" * 64), tmp_path)
    assert apt.cached_deb(apt.Pin("busybox", "1:1.0", "amd64", "a" * 64), tmp_path).parent == tmp_path / "debs"


def test_a_lock_file_of_random_bytes_is_one_line(tmp_path):
    from appliance.assemble import pkglock
    from appliance.assemble.apt import PackageError

    (tmp_path / "t.lock").write_bytes(bytes(range(256)))
    with pytest.raises(PackageError, match="is unreadable"):
        pkglock.read(tmp_path / "t.lock")


def test_a_template_of_random_bytes_or_a_build_folders_name_is_one_line(tmp_path):
    from appliance.assemble.template import load_template

    (tmp_path / "t.toml").write_bytes(b"\xff\xfe" + bytes(range(256)))
    with pytest.raises(TemplateError, match="is not UTF-8 text"):
        load_template(tmp_path / "t.toml")
    for name in ("programs", "facts", "release"):
        (tmp_path / f"{name}.toml").write_text("")
        with pytest.raises(TemplateError, match="is a folder the build itself uses under BUILD_DIR"):
            load_template(tmp_path / f"{name}.toml")


@pytest.mark.parametrize("payload, message", [
    ('["/bin/x", "a\\u0000b"]', "has a NUL byte"),
    ("[" + ", ".join(['"/bin/x"'] * 32) + "]", "has 32 words; the init takes at most 31"),
])
def test_a_payload_the_init_cannot_carry_is_refused(tmp_path, payload, message):
    with pytest.raises(TemplateError, match=message):
        parse_template("t", f"[init]\npayload = {payload}\n", tmp_path)


@pytest.mark.parametrize("cmdline, message", [
    ("quiet\\u0000x", "has a control character"),
    ("x" * 2100, "is 2100 bytes; the kernel takes at most 2047"),
])
def test_a_kernel_command_line_the_kernel_cannot_take_is_refused(tmp_path, cmdline, message):
    with pytest.raises(TemplateError, match=message):
        parse_template("t", f'[vm]\ncmdline = "{cmdline}"\n', tmp_path)


def test_append_past_the_kernels_limit_is_refused_before_qemu_starts(tmp_path):
    from appliance.boot import qemu
    from appliance.bundle import Bundle
    from appliance.errors import BootError
    from tests.conftest import manifest_of

    files = qemu.BootFiles(tmp_path / "c", tmp_path / "t", tmp_path / "p")
    spec = qemu.BootSpec(Bundle(tmp_path, manifest_of()), "tcg", extra_cmdline="y" * 2100)
    with pytest.raises(BootError, match="the kernel takes at most 2047 .*shorten --append"):
        qemu.argv(spec, files)


@pytest.mark.parametrize("word", ["a b", "tab\there", "q'\"uote", "new\nline", "ünï©ødé", "100%", "%41", ""])
def test_every_payload_argument_survives_init_conf(word):
    from appliance.assemble.initramfs import decode_word, encode_word

    encoded = encode_word(word)
    assert " " not in encoded and "\n" not in encoded and "\t" not in encoded
    assert decode_word(encoded) == word


def test_relocking_reports_removed_packages_too():
    from appliance.assemble import pkglock

    before = {"busybox-static": "1", "python3-minimal": "3.11", "libc6": "2.36"}
    after = {"busybox-static": "2", "zlib1g": "1.2"}
    assert pkglock.changes(before, after) == ["busybox-static 1 -> 2", "libc6 2.36 -> removed",
                                              "python3-minimal 3.11 -> removed", "zlib1g new -> 1.2"]
    assert pkglock.changes(before, before) == []


def test_a_files_dst_that_names_a_folder_is_refused(tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(TemplateError, match="names a folder: give the file's path in the appliance"):
        parse_template("t", '[[files]]\nsrc = "x"\ndst = "etc/"\n', tmp_path)
    with pytest.raises(TemplateError, match="src and dst must be strings"):
        parse_template("t", '[[files]]\nsrc = "x"\ndst = 5\n', tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(machine="foo"), "machine 'foo' is not one of: microvm"),
    (lambda m: m.update(memory_mib="256"), "'memory_mib' is str"),
    (lambda m: m.update(cpus=True), "'cpus' is bool"),
    (lambda m: m.update(disks=[{"file": "/etc/passwd", "kind": "virtio-blk"}]), "is not a listed file"),
    (lambda m: m.update(probes=[{"port": "0xf4"}]), "is not a port, code and name"),
    (lambda m: m["files"]["kernel"].pop("sha256"), "file 'kernel' has no size and sha256"),
])
def test_a_resealed_manifest_with_wrong_types_is_one_line(tmp_path, change, message):
    from appliance import bundle
    from appliance.errors import BundleError
    from tests.unit.test_bundle import make_bundle

    make_bundle(tmp_path)
    data = bundle.load(tmp_path).manifest.copy()
    data["files"] = {k: dict(v) for k, v in data["files"].items()}
    change(data)
    bundle.write(tmp_path, data)
    with pytest.raises(BundleError, match=message):
        bundle.load(tmp_path)


def test_an_output_that_cannot_be_written_is_refused_before_any_boot(tmp_path, capsys):
    from appliance.cli import main as cli

    assert cli.main(["bench", str(tmp_path), "-o", "/proc/version"]) == 1
    assert "output /proc/version" in capsys.readouterr().err


def test_what_the_kernel_must_have_to_start_the_payload(tmp_path):
    from appliance.assemble import initramfs, kernelchoice
    from appliance.assemble.layout import LayoutError

    (tmp_path / "run.sh").write_text("#!/bin/sh -e\necho hi\n")
    (tmp_path / "sh").write_bytes(b"\x7fELF\x02" + bytes(60))
    (tmp_path / "old").write_bytes(b"\x7fELF\x01" + bytes(60))
    text = ('[init]\npayload = ["/opt/run.sh"]\n[[files]]\nsrc = "run.sh"\ndst = "opt/run.sh"\nmode = 0o755\n'
            '[[files]]\nsrc = "sh"\ndst = "bin/sh"\nmode = 0o755\n[[files]]\nsrc = "old"\ndst = "bin/old"\nmode = 0o755\n')
    template = parse_template("t", text, tmp_path)
    parts = initramfs.contents(template, b"init", {})
    needs = initramfs.kernel_needs(template, parts)
    assert needs == [("BINFMT_SCRIPT", "[init] payload /opt/run.sh is a #! script")]
    assert kernelchoice.missing({"CONFIG_BINFMT_ELF": "y"}, needs) == needs  # the minimal kernel's base has no scripts
    assert kernelchoice.missing({"CONFIG_BINFMT_SCRIPT": "y"}, needs) == []
    assert kernelchoice.missing(None, needs) == []  # a KERNEL= image: its configuration is unknown
    old = parse_template("t", text.replace('payload = ["/opt/run.sh"]', 'payload = ["/bin/old"]'), tmp_path)
    assert ("IA32_EMULATION", "[init] payload /bin/old is a 32-bit ELF program") in initramfs.kernel_needs(
        old, initramfs.contents(old, b"init", {}))
    lost = parse_template("t", text.replace('dst = "bin/sh"', 'dst = "bin/other"'), tmp_path)
    with pytest.raises(LayoutError, match="is a script for /bin/sh, which the appliance does not have"):
        initramfs.kernel_needs(lost, initramfs.contents(lost, b"init", {}))
