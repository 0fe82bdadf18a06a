"""The Debian kernel: version from a bzImage's setup header."""

from appliance.build.kernel import bzimage_version


def test_bzimage_version_from_setup_header():
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x400).to_bytes(2, "little")
    head[0x600:0x620] = b"6.1.0-56-amd64 (debian@x) #1\0\0\0\0"
    assert bzimage_version(bytes(head)) == "6.1.0-56-amd64"
    assert bzimage_version(b"\0" * 0x1000) is None
