"""The image's own kernel: which /boot/vmlinuz-RELEASE it boots, its modules tree, and an
image without either is one line."""

import pytest

from appliance.assemble import cpio, imagekernel
from appliance.assemble.layout import Placed
from appliance.errors import TemplateError
from tests.unit.assemble.test_template import parse


def placed(path: str, data: bytes = b"x") -> Placed:
    return Placed(cpio.file(path, data, 0o644), "oci:sha256:0")


def test_the_newest_kernel_is_booted_with_its_own_modules():
    tree = [placed("boot/vmlinuz-6.1.0-9-amd64"), placed("boot/vmlinuz-6.1.0-57-amd64", b"new"),
            placed("boot/config-6.1.0-57-amd64"), placed("usr/lib/modules/6.1.0-57-amd64/modules.dep"),
            placed("usr/lib/modules/6.1.0-57-amd64/kernel/virtio_blk.ko"),
            placed("usr/lib/modules/6.1.0-9-amd64/modules.dep")]
    kernel, release = imagekernel.pick(tree)
    assert release == "6.1.0-57-amd64" and kernel.entry.data == b"new"  # 57 after 9: as versions, not as text
    prefix, modules = imagekernel.modules_of(tree, release)
    assert prefix == "usr/lib/modules/6.1.0-57-amd64/"
    assert [p.entry.path.removeprefix(prefix) for p in modules] == ["modules.dep", "kernel/virtio_blk.ko"]
    # not merged /usr: lib/modules
    assert imagekernel.modules_of([placed("lib/modules/5.10/modules.dep")], "5.10")[0] == "lib/modules/5.10/"


def test_an_image_without_a_kernel_or_its_modules_is_one_line():
    with pytest.raises(TemplateError, match="no /boot/vmlinuz-RELEASE .*linux-image-amd64.*kernel = 'debian'"):
        imagekernel.pick([placed("sbin/init")])
    with pytest.raises(TemplateError, match="has /boot/vmlinuz-6.1 but no lib/modules/6.1"):
        imagekernel.modules_of([placed("boot/vmlinuz-6.1")], "6.1")


def test_kernel_image_needs_an_image_to_take_it_from():
    with pytest.raises(TemplateError, match="kernel = 'image' boots the kernel the template's \\[image\\] carries"):
        parse("[appliance]\nkernel = 'image'\n")


def test_an_image_whose_kernel_cannot_boot_is_one_line_and_nothing_is_cached(tmp_path, monkeypatch):
    from appliance.assemble import oci
    from appliance.assemble.template import parse_template

    template = parse_template("t", '[appliance]\nkernel = "image"\n[image]\nrootfs = "x.tar"\ninit = "image"\n',
                              tmp_path)
    tree = [placed("boot/vmlinuz-6.1", b"not a kernel"), placed("usr/lib/modules/6.1/modules.dep")]
    monkeypatch.setattr(oci, "load", lambda *args: None)
    monkeypatch.setattr(oci, "apply", lambda image: tree)
    with pytest.raises(TemplateError, match="vmlinuz-6.1 cannot boot: it is not a kernel image"):
        imagekernel.files(template, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*"))
