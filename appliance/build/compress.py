"""Initramfs compression: none or zstd (in-process, through `zstandard`)."""

from __future__ import annotations

import enum


class Compression(enum.Enum):
    NONE = "none"
    ZSTD = "zstd"


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compress(data: bytes, kind: Compression, level: int = 19) -> bytes:
    if kind is Compression.NONE:
        return data
    import zstandard  # imported here: plain builds must not need it

    # The kernel's decompressor wants the content size and a bounded window.
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=20, write_content_size=True)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


def decompress(data: bytes) -> bytes:
    """Undo `compress` whatever the kind, recognising zstd by its magic."""
    if data.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data)
    return data
