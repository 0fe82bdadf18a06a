"""Analysis: where the time inside a boot goes.

Parsers for what kernels and tools emit (`initcalls`, `tslog`, `profile`), the common
span model (`spans`) and a boot's spans (`bootspans`), the outputs (`flame` SVG,
`exports` for Chrome/Perfetto, speedscope and collapsed stacks, `report` HTML), and
`analyze`, which reads the initcall_debug boots that runs/debugboots.py made. Nothing
here boots a VM: the boots are boot/'s and runs/'s (boot/sampler.py samples one).

May import: the top-level modules, assemble, boot and runs. Never cli.
"""
