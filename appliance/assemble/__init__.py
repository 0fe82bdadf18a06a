"""Build: a template becomes a bundle's bytes.

Template config (`template`), the newc writer (`cpio`), compression, the initramfs,
kernel modules by dependency closure (`kmod`, `modfiles`), the pinned Debian kernel
(`kernel`) and the minimal one (`minikernel`, `kconfig`), qboot (`firmware`), root
disks, guest programs, release artifacts, `inspect` of what was built, and the SCons
builder actions (`actions`) that SConstruct and the SConscripts call.

May import: the top-level contracts and foundations (appliance.errors, proc, fsutil,
probes, machines, bundle, ...). Never boot, runs, analysis or cli.
"""
