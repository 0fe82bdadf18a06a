"""Analysis: where the time inside a boot goes.

Parsers for what kernels and tools emit (`initcalls`, `tslog`, `profile`), the gdbstub
sampler (`sampler`), the common span model (`spans`) and a boot's spans (`bootspans`),
the outputs (`flame` SVG, `exports` for Chrome/Perfetto, speedscope and collapsed
stacks, `report` HTML), and `analyze`, which boots with initcall_debug.

May import: the top-level modules, build, boot and runs. Never cli.
"""
