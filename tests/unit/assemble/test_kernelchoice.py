"""Which kernel a build uses and what bundle.json says of it: the lock, the minimal
recipe, or KERNEL=; the signature SCons reads to know it changed; the symbols it lacks."""

import os

from appliance.assemble import kernelchoice, kernelfetch
from appliance.assemble.config import BuildConfig
from appliance.machines import Arch
from tests.unit.assemble.test_template import parse

DEBIAN, MINIMAL = parse(""), parse("[appliance]\nkernel = 'minimal'\n")


def test_the_debian_kernel_is_its_architectures_lock():
    config = BuildConfig(DEBIAN, "", 0)
    assert kernelchoice.lock(config) == kernelfetch.lock_for(Arch.X86_64)
    assert kernelchoice.signature(config) == kernelchoice.lock(config).read_text()
    facts = kernelchoice.facts(config, "6.1.0-test")
    assert facts["source"] == kernelchoice.lock(config).name and facts["lock"]["package"].startswith("linux-image")


def test_the_minimal_kernel_is_named_by_its_recipe():
    config = BuildConfig(MINIMAL, "", 0)
    key = kernelchoice.minimal_recipe(config).key()
    assert kernelchoice.signature(config) == f"minimal {key}"
    facts = kernelchoice.facts(config, "6.6-min")
    assert (facts["source"], facts["recipe"], facts["kernel_src"]) == ("minimal", key, None)


def test_a_kernel_of_ones_own_is_signed_by_size_and_time_so_a_rebuild_in_place_is_seen(tmp_path):
    image = tmp_path / "bzImage"
    image.write_bytes(b"k" * 10)
    config = BuildConfig(MINIMAL, str(image), 0)  # KERNEL= wins over the template's kernel
    before = kernelchoice.signature(config)
    assert before == f"{image}=10:{image.stat().st_mtime_ns}"
    os.utime(image, ns=(1, 2))
    assert kernelchoice.signature(config) != before
    assert kernelchoice.signature(BuildConfig(DEBIAN, str(tmp_path / "gone"), 0)).endswith("=missing")
    assert kernelchoice.facts(config, "6.9")["source"] == "KERNEL"


def test_the_symbols_a_kernel_lacks_are_named_and_an_unknown_config_lacks_none(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "config").write_text("CONFIG_VIRTIO_BLK=y\nCONFIG_EXT4_FS=m\n# CONFIG_NET is not set\n")
    symbols = kernelchoice.config_symbols(kernelfetch.KernelFiles(tmp_path / "vmlinuz", None, "6.6"))
    needs = [("VIRTIO_BLK", "the root disk"), ("EXT4_FS", "ext4"), ("NET", "[network]")]
    assert kernelchoice.missing(symbols, needs) == [("NET", "[network]")]
    assert kernelchoice.missing(None, needs) == []
