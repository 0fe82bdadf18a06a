"""Clocks: what a measurement counts, and the unit of each figure (docs/CONTRACTS.md,
"Clocks").

- `wall`: host timestamps of the probe writes (QEMU's trace), in milliseconds.
- `instructions`: the same boots, and at each probe write the guest instructions QEMU
  executed before it (our TCG plugin, plugin/insncount.c); wall time is kept beside.
- `virtual`: `instructions` under `-icount shift=0,sleep=off,align=off`: virtual time
  advances one nanosecond per instruction, so the guest's own clocks (printk, the
  init's CLOCK_BOOTTIME, initcall durations) advance with its work and repeat.

A phase in instructions is the difference of two probes' counts; phases that start or
end on the host (QEMU's start, its exit seen by the runner, a service's answer) or at a
moment inferred from the trace have no instruction count (None), and say so."""

from __future__ import annotations

import enum


class Clock(enum.StrEnum):
    WALL = "wall"
    INSTRUCTIONS = "instructions"
    VIRTUAL = "virtual"

    @property
    def counts(self) -> bool:
        """Whether boots on this clock load the instruction-counting plugin."""
        return self is not Clock.WALL


class Unit(enum.StrEnum):
    """The unit of a phase's figures: the key it is stored under in a run record."""

    MS = "ms"  # phases_ms
    INSTRUCTIONS = "instructions"  # phases_insn

    @property
    def phases_key(self) -> str:
        return "phases_ms" if self is Unit.MS else "phases_insn"


def unit_of(clock: Clock) -> Unit:
    """The unit a clock's verdicts are decided in."""
    return Unit.MS if clock is Clock.WALL else Unit.INSTRUCTIONS
