"""The SCons adapter's own logic: the code that signs each artifact, build-dir and variant names, option errors."""

import shutil

import pytest

from appliance.assemble.template import (
    Kernel,
    KernelCompression,
    Loader,
    parse_template,
    with_loader,
)
from appliance.errors import TemplateError
from appliance.machines import Machine


def test_variant_names_say_what_the_options_changed(tmp_path):
    from dataclasses import replace

    from appliance.assemble.actions import variant_name

    written = parse_template("benchmark", "", tmp_path)
    assert variant_name(written, written, "") == ""
    assert variant_name(written, replace(written, machine=Machine.Q35_QBOOT), "") == "q35-qboot"
    minimal = replace(written, kernel=Kernel.MINIMAL, kernel_compression=KernelCompression.LZ4)
    assert variant_name(written, minimal, "") == "minimal-kernel+lz4"
    assert variant_name(written, written, "/src/linux/arch/x86/boot/bzImage") == "kernel-bzImage"
    uefi = replace(written, machine=Machine.Q35_OVMF)
    assert variant_name(written, with_loader(uefi, "systemd-boot"), "") == "q35-ovmf+systemd-boot"
    with pytest.raises(TemplateError, match="LOADER = 'lilo' is not one of: none, systemd-boot"):
        with_loader(uefi, "lilo")
    with pytest.raises(TemplateError, match="it needs machine = 'q35-ovmf'"):
        with_loader(written, "systemd-boot")
    # KERNEL_RECIPE=minimal on a template booted by systemd-boot: checked as the template would be
    from appliance.assemble.template import check_combined
    with pytest.raises(TemplateError, match="through its EFI stub"):
        check_combined(replace(with_loader(uefi, "systemd-boot"), kernel=Kernel.MINIMAL))


def test_every_module_that_signs_an_artifact_exists_and_a_change_to_one_changes_the_signature(monkeypatch, tmp_path):
    from appliance.assemble import actions

    for artifact, modules in actions.CODE.items():
        for module in modules:
            assert (actions.PACKAGE / f"{module}.py").is_file(), f"{artifact}: {module} is no module"
    before = actions.code_signature("release")
    copy = tmp_path / "appliance"
    shutil.copytree(actions.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(actions, "PACKAGE", copy)
    assert actions.code_signature("release") == before
    (copy / "assemble" / "uki.py").write_text((copy / "assemble" / "uki.py").read_text() + "\n# a fix\n")
    assert actions.code_signature("release") != before and actions.code_signature("kernel") == \
        actions.code_signature("kernel")


def test_build_dirs_are_named_as_scons_names_them_and_bad_options_are_one_line():
    from appliance.assemble import actions
    from appliance.errors import TemplateError

    assert actions.scons_dir("out/") == "#out" and actions.scons_dir("/tmp/b/") == "/tmp/b"
    assert actions.scons_dir("") == "#build"
    with pytest.raises(TemplateError, match="LOADER=grub is not one of: none, systemd-boot"):
        actions._one_of("LOADER", "grub", Loader)
    with pytest.raises(TemplateError, match="SOURCE_DATE_EPOCH=yesterday is not whole seconds"):
        actions._epoch("yesterday")
