"""appliance: build minimal Linux boot appliances and measure where boot time goes.

The subpackages follow the data flow, template -> bundle -> boot -> results -> analysis:

    build/     template (TOML) -> kernel, initrd, firmware, disks, bundle.json, releases
    boot/      a bundle -> one QEMU process -> one measured boot (events, phases)
    runs/      many boots -> results JSON, statistics, A/B comparison
    analysis/  inside a boot: initcalls, tslog, profiles, flamecharts, exports, report
    cli/       the `appliance` verbs

The modules at this level are what the stages share: the contracts between them
(`probes`: the probe table; `phases`: what each phase spans; `machines`: the VM
profiles; `bundle`: bundle.json; `results`: the results JSON; `guestlog`: profiled's
records) and the foundations (`errors`, `proc`: the one subprocess gateway, `fsutil`,
`stats`, `paths`). A module imports only from its own layer or lower ones, in the
order above (top level lowest, cli highest); tests/unit/test_layers.py checks it.
"""

__version__ = "0.1.0"
