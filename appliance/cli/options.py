"""Argument types shared by the verbs."""

from __future__ import annotations

import argparse
import math


def positive(text: str) -> float:
    """An argparse type: a finite number above 0 (nan, inf, 0 and negatives refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


# What the verbs' positional arguments accept, said once for every verb that takes one.
BUNDLE = "a bundle directory (build/<template>), a release .tar.zst or an .iso"
RESULTS = "a results JSON written by bench, compare, crosscheck or analyze"


BOOT_TIMEOUT_S = 120.0  # a boot taking longer counts as hung
