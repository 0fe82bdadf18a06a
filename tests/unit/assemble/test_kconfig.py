"""Kernel config fragments: parsing, merging, overlaying, and the dropped-symbol check."""

import pytest

from appliance.assemble import kconfig, minikernel
from appliance.assemble.template import parse_template
from appliance.errors import TemplateError

TINY = """#
# Automatically generated file; DO NOT EDIT.
CONFIG_64BIT=y
# CONFIG_PRINTK is not set
CONFIG_KERNEL_XZ=y
CONFIG_LOCALVERSION=""
"""


def test_parse_reads_set_unset_and_strings_and_later_lines_win():
    values = kconfig.parse(TINY + "CONFIG_PRINTK=y\n")
    assert values == {"64BIT": "y", "PRINTK": "y", "KERNEL_XZ": "y", "LOCALVERSION": '""'}


def test_parse_names_the_bad_line():
    with pytest.raises(kconfig.KconfigError, match=r"virt:2: not a kconfig line: 'VIRTIO=y'"):
        kconfig.parse("CONFIG_A=y\nVIRTIO=y\n", "virt")


def test_merge_applies_fragments_in_order():
    merged = kconfig.merge([("base", "CONFIG_A=y\nCONFIG_B=y\n"), ("later", "# CONFIG_A is not set\n")])
    assert merged == {"A": "n", "B": "y"}


def test_overlay_replaces_in_place_and_appends_the_rest():
    text = kconfig.overlay(TINY, {"PRINTK": "y", "VIRTIO_BLK": "y"})
    lines = text.splitlines()
    assert "CONFIG_PRINTK=y" in lines and "# CONFIG_PRINTK is not set" not in lines
    assert lines.index("CONFIG_PRINTK=y") == TINY.splitlines().index("# CONFIG_PRINTK is not set")
    assert lines[-1] == "CONFIG_VIRTIO_BLK=y"
    assert kconfig.parse(text)["PRINTK"] == "y"


KCONFIG = """
menuconfig BLK_DEV
	bool "Block devices"
	depends on BLOCK
	default y

if BLK_DEV

config VIRTIO_BLK
	tristate "Virtio block driver"
	depends on VIRTIO
	select SG_POOL
	help
		depends on nothing here: help text is not a dependency

endif # BLK_DEV

config OTHER
	bool "x"
	depends on PCI
"""


def test_dropped_names_each_lost_symbol_with_its_dependencies():
    asked = {"VIRTIO_BLK": "y", "PRINTK": "y", "SWAP": "n"}
    resolved = {"PRINTK": "y"}
    lost = kconfig.dropped(asked, resolved, {"drivers/block/Kconfig": KCONFIG})
    assert [(d.symbol, d.asked, d.got) for d in lost] == [("VIRTIO_BLK", "y", "n")]
    assert lost[0].depends == ("BLK_DEV", "VIRTIO")
    assert kconfig.explain(lost) == "CONFIG_VIRTIO_BLK=y became n (depends on BLK_DEV && VIRTIO)"


def test_depends_on_ignores_other_symbols_and_unknown_ones():
    assert kconfig.depends_on("OTHER", {"k": KCONFIG}) == ("PCI",)
    assert kconfig.depends_on("NOPE", {"k": KCONFIG}) == ()


def _recipe(**changes):
    base = dict(source_id="deb", fragments=(("base", "CONFIG_A=y\n"),), patch="p", compression="zstd")
    return minikernel.Recipe(**{**base, **changes})


def test_recipe_key_changes_with_every_input_and_source_key_only_with_source_and_patch():
    key = _recipe().key()
    for change in ({"source_id": "x"}, {"fragments": (("base", "CONFIG_A=n\n"),)}, {"patch": "q"},
                   {"compression": "xz"}):
        assert _recipe(**change).key() != key
    assert _recipe(compression="lz4").source_key() == _recipe().source_key()
    assert _recipe(patch="q").source_key() != _recipe().source_key()


def test_recipe_asks_for_the_compression_symbol_except_for_none():
    assert _recipe(compression="lz4").asked() == {"A": "y", "KERNEL_LZ4": "y"}
    assert _recipe(compression="none").asked() == {"A": "y"}


def test_builtin_aliases_from_modinfo():
    modinfo = b"ext4.alias=fs-ext4\0ext4.parm=x:bool\0virtio_blk.alias=virtio:d00000002v*\0printk.parmtype=time:bool\0"
    assert minikernel.builtin_aliases(modinfo) == [("fs-ext4", "ext4"), ("virtio:d00000002v*", "virtio_blk")]


def test_patched_files_are_read_from_the_patch():
    patch = "--- a/init/Kconfig\n+++ b/init/Kconfig\n@@ -1 +1 @@\n--- a/init/main.c\n+++ b/init/main.c\n"
    assert minikernel._patched_files(patch) == ["init/Kconfig", "init/main.c"]


def test_the_repo_fragments_and_patch_are_well_formed():
    from appliance.assemble.minikernel import FRAGMENTS, MINIMAL

    asked = kconfig.merge(minikernel.read_fragments(MINIMAL, FRAGMENTS))
    assert asked["APPLIANCE_PROBES"] == "y" and asked["PVH"] == "y" and asked["MODULES"] == "n"
    assert minikernel._patched_files((MINIMAL / "appliance-probes.patch").read_text()) == ["init/Kconfig", "init/main.c"]


def test_template_kernel_choice_and_compression(tmp_path):
    t = parse_template("t", '[appliance]\nkernel = "minimal"\nkernel_compression = "lz4"\n', tmp_path)
    assert (t.kernel, t.kernel_compression) == ("minimal", "lz4")
    assert parse_template("t", "", tmp_path).kernel_compression == "none"
    with pytest.raises(TemplateError, match="kernel_compression = 'gzip' is not one of: none, lz4, zstd, xz"):
        parse_template("t", '[appliance]\nkernel_compression = "gzip"\n', tmp_path)
    with pytest.raises(TemplateError, match="kernel = 'tiny' is not one of: debian, minimal"):
        parse_template("t", '[appliance]\nkernel = "tiny"\n', tmp_path)


def test_a_missing_build_tool_is_named_before_anything_is_built(tmp_path, monkeypatch):
    from appliance.errors import ToolMissing

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing, match=r"^make not found: install it with `apt-get install make`$"):
        minikernel.build(_recipe(), tmp_path / "no-source", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing half-made


def test_the_option_behind_an_object_is_read_from_its_makefile():
    makefile = ("obj-$(CONFIG_CRYPTO) += crypto.o\ncrypto-y := api.o cipher.o\n"
                "obj-$(CONFIG_CRYPTO_ALGAPI2) += crypto_algapi.o\ncrypto_algapi-y := algapi.o proc.o\n"
                "obj-y += always.o\nobj-$(CONFIG_X) += a.o \\\n\tb.o  # two on one line\n")
    assert kconfig.makefile_symbol(makefile, "algapi.o") == "CRYPTO_ALGAPI2"  # through the composite object
    assert kconfig.makefile_symbol(makefile, "api.o") == "CRYPTO"
    assert kconfig.makefile_symbol(makefile, "b.o") == "X"  # a continued line
    assert kconfig.makefile_symbol(makefile, "always.o") is None and kconfig.makefile_symbol(makefile, "zz.o") is None


def test_an_initcall_is_traced_to_the_option_that_builds_it(tmp_path):
    (tmp_path / "crypto").mkdir()
    (tmp_path / "crypto" / "algapi.c").write_text("static int __init crypto_algapi_init(void)\n{\n\treturn 0;\n}\n")
    (tmp_path / "crypto" / "Makefile").write_text("obj-$(CONFIG_CRYPTO_ALGAPI2) += crypto_algapi.o\n"
                                                  "crypto_algapi-y := algapi.o\n")
    (tmp_path / "init").mkdir()
    (tmp_path / "init" / "main.c").write_text("static int __init always_here(void) { return 0; }\n")
    (tmp_path / "init" / "Makefile").write_text("obj-y += main.o\n")
    assert minikernel.initcall_symbols(tmp_path, ["crypto_algapi_init", "always_here", "nowhere"]) == {
        "crypto_algapi_init": "CRYPTO_ALGAPI2", "always_here": None, "nowhere": None}


def test_a_recipe_without_a_symbol_is_another_kernel_asking_for_it_off():
    base = _recipe()
    lean = base.without("SWAP")
    assert lean.asked()["SWAP"] == "n" and lean.key() != base.key() and lean.source_key() == base.source_key()
    assert lean.without("SWAP") == lean and base.without() == base
