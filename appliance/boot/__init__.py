"""Boot: one bundle, one QEMU process, one measured boot.

QEMU's argv and process (`qemu`), whether KVM really works (`accel`), the channels
that bring probe times to the host (trace in `measure`, `serial`, `perf`, the exit
channel), the TCG clock fix (`tsc`), and facts about the host and its load
(`hostfacts`, `hostload`). `measure.boot()` turns a bundle into a BootRun.

May import: the top-level contracts and foundations, and build. Never runs, analysis
or cli.
"""
