"""QEMU as a child process: argv built as data, and a wrapper that never leaves orphans.

A boot is described once, by a frozen `BootSpec`; `argv()` turns it into QEMU's command
line (pure). `Qemu` is the process's life as methods: `start` (through `proc.spawn`, so
QEMU dies even if we are killed with SIGKILL), `wait_ready`, `wait` (on a pidfd, with a
deadline), `stop` (SIGTERM with a grace period) and `kill`; on any exit path (timeout,
Ctrl-C, exception) the context manager ends it. It reaps the child with wait4() for
QEMU's max RSS and CPU time.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from appliance import proc
from appliance.bundle import BOOT_DISK, BOOT_KIND, Bundle
from appliance.clocks import Clock
from appliance.errors import ApplianceError, BootError
from appliance.machines import Accel, Arch, Machine, cmdline_problem, shape
from appliance.netspec import CONTROL_PORT, Forward
from appliance.probes import PORT_FIRMWARE, PORT_KERNEL
from appliance.proc import PACKAGES, find_tool
from appliance.snapshot import Snapshot

log = logging.getLogger(__name__)


class Channel(enum.StrEnum):
    """How probe times reach the host (docs/CONTRACTS.md, "Probe protocol")."""

    TRACE = "trace"  # QEMU's timestamps of isa-debugcon writes
    EXIT = "exit"  # isa-debug-exit: QEMU ends at the probe; its lifetime is the time
    SERIAL = "serial"  # host arrival time of `appliance-probe:` console lines
    PERF = "perf"  # perf record -e kvm:kvm_pio (KVM only)


@dataclass(frozen=True)
class BootFiles:
    """Where one boot's host-side outputs go."""

    console: Path
    trace: Path
    perf: Path
    profiled: Path | None = None  # where profiled's records land, for bundles that have it
    qmp: Path | None = None  # QEMU's monitor socket, for snapshots and restores
    insns: Path | None = None  # the instruction clock's report (--clock instructions|virtual)


def virtio_bus(bundle: Bundle) -> str:
    """QEMU's name for the machine's virtio transport: virtio-*-device on virtio-mmio."""
    return "device" if shape(bundle.machine).virtio_transport == "virtio_mmio" else "pci"


@functools.lru_cache(maxsize=8)
def qemu_version(path: str) -> str:
    """The first line of `PATH --version` (asked once per binary)."""
    done = proc.run([path, "--version"], timeout=30, check=False)
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def binary(arch: Arch) -> str:
    """The QEMU for a bundle of ARCH (qemu-system-<arch> on PATH); one clear line if there is none."""
    try:
        return find_tool(arch.qemu)
    except ApplianceError:
        raise BootError(f"this bundle is {arch.value} and {arch.qemu} is not installed: install "
                        f"{PACKAGES.get(arch.qemu, arch.qemu)} (./setup does)") from None


def disk_args(bundle: Bundle, keep_writes: bool = False, boot_disk: Path | None = None) -> tuple[list[str], list[str]]:
    """(machine options, devices) for the bundle's disks. Writes are discarded unless
    KEEP_WRITES, so booting never changes a bundle's files (and their digests). The boot
    loader's disk (BOOT_DISK: the bundle's, or this boot's copy) is read-only and first
    in the firmware's boot order."""
    machine: list[str] = []
    devices: list[str] = []
    for number, disk in enumerate(bundle.disks):
        path = bundle.path / disk["file"]
        if disk["kind"] == BOOT_KIND:
            devices += ["-drive", f"id=disk{number},file={boot_disk or path},format=raw,if=none,readonly=on",
                        "-device", f"virtio-blk-{virtio_bus(bundle)},drive=disk{number},bootindex=0"]
        elif disk["kind"] == "pmem":
            machine.append("nvdimm=on")
            devices += ["-object", f"memory-backend-file,id=pmem{number},mem-path={path},"
                        f"size={path.stat().st_size},share={'on' if keep_writes else 'off'}",
                        "-device", f"nvdimm,id=nvdimm{number},memdev=pmem{number}"]
        else:
            snapshot = "" if keep_writes else ",snapshot=on"
            bus = virtio_bus(bundle)
            devices += ["-drive", f"id=disk{number},file={path},format=raw,if=none{snapshot}",
                        "-device", f"virtio-blk-{bus},drive=disk{number}"]
    return machine, devices


def profiled_args(bundle: Bundle, files: BootFiles) -> list[str]:
    """The channel profiled writes to, into FILES.profiled: a second serial port at COM2's
    address (the guest's ttyS1) or a virtio-console port."""
    spec = bundle.profiled
    if spec is None or files.profiled is None:
        return []
    args = ["-chardev", f"file,id=profiled,path={files.profiled}"]
    # (profiled's channel, "serial" or "virtio" as bundle.json says, not the boot's Channel)
    if spec.channel == "serial":  # COM2 by hand: microvm creates only one serial port itself
        return args + ["-device", "isa-serial,chardev=profiled,iobase=0x2f8,irq=3"]
    bus = virtio_bus(bundle)
    name = spec.device.removeprefix("virtio-port:")  # the init finds the port by this name
    return args + ["-device", f"virtio-serial-{bus}", "-device", f"virtserialport,chardev=profiled,name={name}"]


def forwards(bundle: Bundle) -> tuple[Forward, ...]:
    """The bundle's forwards, and the one to its init's stop channel (with a network)."""
    return () if bundle.forwards is None else (*bundle.forwards, CONTROL)


CONTROL = Forward("tcp", 0, CONTROL_PORT)  # the runner's way to ask a guest with a network to power off


def network_args(bundle: Bundle, host_ports: dict[Forward, int]) -> list[str]:
    """QEMU's user-mode network with the bundle's forwards (HOST_PORTS: the host port
    each one uses in this boot) and a virtio-net device on the machine's transport."""
    if bundle.forwards is None:
        return []
    rules = (f"hostfwd={f.hostfwd(host_ports.get(f, f.host_port))}" for f in forwards(bundle))
    options = ["user", "id=net0", *rules]
    if bundle.restrict:
        options.append("restrict=on")
    bus = virtio_bus(bundle)
    return ["-netdev", ",".join(options), "-device", f"virtio-net-{bus},netdev=net0"]


@dataclass(frozen=True)
class BootSpec:
    """One boot, described once: the bundle, the accelerator, the channel and what the
    boot adds to the bundle. Built by runs/ (a Plan's boots) or the CLI (`run`), read
    here (the command line) and by measure (the boot's life)."""

    bundle: Bundle
    accel: Accel
    timeout: float = 120.0  # seconds before the boot counts as hung
    channel: Channel = Channel.TRACE
    extra_cmdline: str = ""  # kernel arguments for this boot only (the bundle is not changed)
    keep_disk_writes: bool = False  # let the guest change the bundle's disk images
    exit_probe: str | None = None  # exit channel: the probe at which QEMU ends
    trace: bool = False  # QEMU's write trace beside another channel (one boot measured two ways)
    restore: Snapshot | None = None  # start from this snapshot's state instead of booting
    clock: Clock = Clock.WALL  # instructions and virtual load the counting plugin (appliance/clocks.py)
    sample_every: int = 0  # with a counting clock: note the guest PC every this many instructions (profile)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accel", Accel(self.accel))  # "tcg" from a caller is Accel.TCG: compared by identity

    @property
    def qemu(self) -> str:
        """The QEMU binary for the bundle's architecture."""
        return binary(self.bundle.arch)

    def vm(self) -> dict[str, Any]:
        """What a snapshot's state needs of the QEMU that loads it (snapshot.MUST_MATCH)."""
        bundle = self.bundle
        return {"qemu_version": qemu_version(self.qemu), "machine": bundle.machine.value,
                "memory_mib": bundle.memory_mib, "cpus": bundle.cpus, "accel": self.accel,
                "cpu_model": self.cpu_model}

    @property
    def cpu_model(self) -> str:
        """QEMU's -cpu: the bundle's, else max under TCG (host under KVM). Under virtual
        time without RDRAND and RDSEED: they return the host's randomness, which the
        kernel mixes into what it does (measured: the Debian kernel's boot then differed
        by thousands of instructions; without them, not one)."""
        if self.bundle.cpu_model:
            return self.bundle.cpu_model
        if self.accel is not Accel.TCG:
            return "host"
        return "max,rdrand=off,rdseed=off" if self.clock is Clock.VIRTUAL else "max"

    def with_cmdline(self, words: str) -> BootSpec:
        """The same boot with WORDS added to its kernel command line."""
        return replace(self, extra_cmdline=" ".join(filter(None, (self.extra_cmdline, words))))


def check_kvm_clock(spec: BootSpec) -> None:
    """Under KVM only `instructions` counts (perf's instructions:G, the whole run), and not
    beside the perf channel or a sampling profile; one line otherwise."""
    if spec.clock is Clock.VIRTUAL:
        raise BootError("--clock virtual is QEMU's -icount, which only TCG has: under KVM use --clock instructions "
                        "(perf's guest instruction counter) or --accel tcg")
    if spec.channel is Channel.PERF or spec.sample_every:
        raise BootError("under KVM the instruction clock is perf stat around QEMU: not with --channel perf or a "
                        "sampling profile; use --accel tcg")
    find_tool("perf")


def counting_plugin(spec: BootSpec) -> Path:
    """The instruction clock's plugin for SPEC's QEMU (built once per QEMU version, into
    the cache); one line where it cannot count: aarch64, another QEMU."""
    from appliance.assemble import plugin

    if spec.bundle.arch is not Arch.X86_64:
        raise BootError(f"--clock {spec.clock} finds probes by their x86 port write (out %al,$0xf4): this bundle is "
                        f"{spec.bundle.arch.value}; use --clock wall")
    return plugin.ensure(qemu_version(spec.qemu))


OVMF = (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))  # Debian's ovmf


def ovmf_args() -> list[str]:
    """Debian's OVMF in pflash: its code read-only, its variables copy-on-write for this
    boot only (snapshot=on), so no boot changes what the next one starts from."""
    code, variables = OVMF
    if not code.is_file() or not variables.is_file():
        raise BootError(f"the q35-ovmf machine needs Debian's OVMF ({code} and {variables}): apt-get install ovmf")
    for path in (code, variables):  # a damaged or empty image hangs the guest until --timeout: say so first
        with open(path, "rb") as image:
            head = image.read(64)
        if head[40:44] != b"_FVH":
            raise BootError(f"{path} is not a UEFI firmware volume (no _FVH signature): reinstall ovmf "
                            "(apt-get install --reinstall ovmf)")
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}"]


def boot_disk_for(bundle: Bundle, cmdline: str, files: BootFiles) -> Path | None:
    """The boot loader's disk this boot reads: the bundle's, or where CMDLINE is not the
    one its loader entry was built with (--append, the exit probe), a copy beside the
    boot's console with the entry rewritten (the bundle's disk is never changed)."""
    disk = bundle.boot_disk
    if disk is None or cmdline == bundle.cmdline:
        return disk
    from appliance.assemble import bootdisk

    copy = files.console.with_name(BOOT_DISK)
    bootdisk.with_cmdline(disk, cmdline, copy)
    return copy


def check_pe(path: Path) -> None:
    """PATH must be a PE image (an EFI program): OVMF hangs on anything else until the
    boot's timeout."""
    if not path.is_file():
        return  # a missing file is QEMU's own one line (and a verified bundle has it)
    with open(path, "rb") as image:
        head = image.read(4096)
    offset = int.from_bytes(head[0x3C:0x40], "little") if len(head) >= 0x40 else 0
    if head[:2] != b"MZ" or head[offset:offset + 4] != b"PE\0\0":
        raise BootError(f"{path} is not an EFI program (no MZ/PE header): rebuild the bundle")


# machines whose ACPI tables QEMU 7.2 gives a VMGENID device (not microvm's)
VMGENID_MACHINES = frozenset({Machine.PC_SEABIOS, Machine.Q35_QBOOT, Machine.Q35_OVMF})


def argv(spec: BootSpec, files: BootFiles, console_socket: Path | None = None,
         host_ports: dict[Forward, int] | None = None) -> list[str]:
    """The full command line for the boot SPEC describes.

    CONSOLE_SOCKET serves the console on that UNIX socket instead (QEMU waits for the
    connection before it starts the guest), for an interactive session. HOST_PORTS gives
    the host port of each forward whose template port is 0."""
    bundle, channel = spec.bundle, spec.channel
    words = [bundle.cmdline, spec.extra_cmdline, f"appliance_exit_probe={spec.exit_probe}" if spec.exit_probe else ""]
    cmdline = " ".join(w for w in words if w)
    problem = cmdline_problem(cmdline)
    if problem:
        raise BootError(f"{problem} (the bundle's, the runner's and --append's words together): shorten --append")
    machine_options, disks = disk_args(bundle, spec.keep_disk_writes, boot_disk_for(bundle, cmdline, files))
    if bundle.machine is Machine.MICROVM and not bundle.kernel_acpi and (disks or bundle.forwards is not None):
        # a kernel without ACPI finds microvm's virtio-mmio devices only on its command
        # line, which QEMU writes (virtio_mmio.device=...) only when it builds no ACPI tables
        machine_options.append("acpi=off")
    machine_args = list(shape(bundle.machine).qemu_args)
    machine_args[-1] = ",".join([machine_args[-1], *machine_options])
    memory = str(bundle.memory_mib)
    if machine_options:  # NVDIMMs live outside RAM: QEMU needs a slot and headroom for them
        memory += f",slots=2,maxmem={int(memory) + 4096}M"
    arch, accel = bundle.arch, spec.accel
    args = [
        spec.qemu, "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", *machine_args,
        "-accel", accel, "-cpu", spec.cpu_model,
        "-m", memory, "-smp", str(bundle.cpus), *disks,
    ]
    if bundle.cdrom is not None:  # firmware boots the ISO; its isolinux.cfg has the cmdline
        args += ["-cdrom", str(bundle.cdrom)]
    elif bundle.boot_disk is not None:  # firmware boots the disk (disk_args); its loader entry has the cmdline
        pass
    elif bundle.machine is Machine.Q35_OVMF and bundle.uki is not None and bundle.kernel_file is None:
        # OVMF runs the UKI as an EFI program; -append reaches its stub as the command line
        check_pe(bundle.uki)
        args += ["-kernel", str(bundle.uki), "-append", cmdline]
    else:
        args += ["-kernel", str(bundle.kernel), "-initrd", str(bundle.initrd), "-append", cmdline]
    if bundle.machine is Machine.Q35_OVMF:
        args += ovmf_args()
    if bundle.dtb is not None:  # QEMU adds the initrd's place and seeds to its /chosen
        args += ["-dtb", str(bundle.dtb)]
    if bundle.machine is Machine.Q35_QBOOT:
        assert bundle.firmware is not None, "checked when the bundle was loaded"
        args += ["-bios", str(bundle.firmware)]
    if console_socket is not None:
        args += ["-chardev", f"socket,id=console,path={console_socket},server=on,wait=on", "-serial", "chardev:console"]
    elif channel in (Channel.SERIAL, Channel.PERF):  # console on stdout: we timestamp arrivals
        args += ["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"]
    else:
        args += ["-chardev", f"file,id=console,path={files.console}", "-serial", "chardev:console"]
    if channel is Channel.TRACE and arch is Arch.X86_64:  # aarch64: the MMIO probe register needs no device
        for port in (PORT_KERNEL, PORT_FIRMWARE):
            args += ["-chardev", f"null,id=probe{port:x}",
                     "-device", f"isa-debugcon,iobase={port:#x},chardev=probe{port:x}"]
    if channel is Channel.TRACE or spec.trace:
        args += ["-trace", "memory_region_ops_write", "-msg", "timestamp=on", "-D", str(files.trace)]
        if bundle.boot_disk is not None:  # the boot loader's phase is its disk reads (probes.parse_trace)
            args += ["-trace", "virtio_blk_handle_read"]
    args += profiled_args(bundle, files)
    args += network_args(bundle, host_ports or {})
    if spec.clock.counts and accel is Accel.KVM:  # no TCG plugin under KVM: the CPU's own counter, whole run
        from appliance.boot.insnclock import perf_stat_args

        assert files.insns is not None, "a counting clock's boot names its report file"
        check_kvm_clock(spec)
        args = [*perf_stat_args(files.insns), *args]
    elif spec.clock.counts:
        from appliance.boot.insnclock import qemu_args

        assert files.insns is not None, "a counting clock's boot names its report file"
        args += qemu_args(spec.clock, counting_plugin(spec), files.insns, spec.sample_every)
    if files.qmp is not None:  # a snapshot is taken, or restored
        args += ["-qmp", f"unix:{files.qmp},server=on,wait=off"]
        if bundle.machine in VMGENID_MACHINES:
            # a generation ID new at each launch: on a restore QEMU writes it into the guest
            # and notifies it through ACPI, and Linux's vmgenid driver reseeds its CRNG
            args += ["-device", "vmgenid,guid=auto"]
    if spec.restore is not None:  # paused (-S); the runner hands QEMU the state's descriptor, then continues it
        args += ["-S", "-incoming", "defer"]
    if channel is Channel.EXIT:
        if arch is not Arch.X86_64:
            raise BootError("the exit channel is isa-debug-exit, an x86 I/O port device: on aarch64 use "
                            "--channel trace or serial")
        args += ["-device", f"isa-debug-exit,iobase={PORT_KERNEL:#x},iosize=1"]
    elif channel is Channel.PERF:
        from appliance.boot.perf import RECORD_ARGS

        args = ["perf", *RECORD_ARGS, "-o", str(files.perf), "--", *args]
    return args


@dataclass
class Exit:
    returncode: int
    exec_ns: int  # CLOCK_REALTIME just before the process was started
    exit_ns: int  # CLOCK_REALTIME when the exit was seen
    max_rss_kib: int
    stderr: str
    cpu_s: float = 0.0  # QEMU's user + system CPU time (all its threads)
    stopped_ms: float = 0.0  # how long QEMU was seen stopped (SIGSTOP, a debugger): a disturbed boot


def _stopped(pid: int) -> bool:
    """Whether PID is stopped (state T: SIGSTOP, or t: a tracer), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


class Qemu:
    """One QEMU process and its life: start, wait (for readiness, for its exit), stop
    with a grace period, kill. Use as a context manager so it is always ended."""

    def __init__(self, argv: list[str], stderr_path: Path, stdout_pipe: bool = False) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self.stdout_pipe = stdout_pipe
        self.child: proc.Child | None = None
        self.exec_ns = 0

    def start(self) -> Qemu:
        """Start QEMU (it dies with us: proc.spawn); EXEC_NS is taken just before."""
        with open(self.stderr_path, "wb") as err:
            self.exec_ns = time.time_ns()
            # its own process group: a Ctrl-C at the terminal is ours to handle (run --serve powers the guest off)
            self.child = proc.spawn(self.argv, stdout=proc.PIPE if self.stdout_pipe else err, stderr=err,
                                    own_group=True)
        return self

    def __enter__(self) -> Qemu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        assert self.child is not None, "QEMU was not started"
        return self.child.pid

    @property
    def stdout(self) -> IO[bytes] | None:
        return self.child.stdout if self.child is not None else None

    def last_error(self) -> str:
        """QEMU's last line on stderr (what it said when it refused to start)."""
        lines = [line for line in self.stderr_path.read_text(errors="replace").splitlines()
                 if "info: QEMU waiting" not in line]
        return lines[-1].strip() if lines else "no message"

    def wait_ready(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        """Poll READY until it holds; BootError if QEMU exits first or DEADLINE
        (time.monotonic()) passes while waiting for WHAT."""
        assert self.child is not None, "QEMU was not started"
        while not ready():
            if self.child.poll() is not None:
                raise BootError(f"QEMU exited with code {self.child.returncode}: {self.last_error()}")
            if time.monotonic() > deadline:
                raise BootError(f"QEMU did not get {what} ready in time: {self.last_error()}")
            time.sleep(0.02)

    def wait(self, deadline: float | Callable[[], float], on_tick: object = None) -> Exit:
        """Wait until QEMU exits or DEADLINE (time.monotonic(); or a function giving it,
        for a deadline that moves) passes (BootError)."""
        assert self.child is not None, "QEMU was not started"
        fd = os.pidfd_open(self.pid)
        stopped_s, last = 0.0, time.monotonic()
        try:
            while True:
                remaining = (deadline() if callable(deadline) else deadline) - time.monotonic()
                if remaining <= 0:
                    raise BootError("timed out")
                ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
                now = time.monotonic()
                if not ready and _stopped(self.pid):
                    stopped_s += now - last
                last = now
                if callable(on_tick):
                    on_tick()
                if ready:
                    exit_ns = time.time_ns()
                    break
        finally:
            os.close(fd)
        returncode, usage = self.child.reap()
        return Exit(returncode, self.exec_ns, exit_ns, usage.ru_maxrss,
                    self.stderr_path.read_text(errors="replace"), usage.ru_utime + usage.ru_stime, stopped_s * 1e3)

    def stop(self, grace_s: float) -> Exit:
        """Ask QEMU to end (SIGTERM: it shuts the guest down as at a power cut) and wait
        up to GRACE_S for it; killed if it is still there then."""
        assert self.child is not None, "QEMU was not started"
        self.child.signal(signal.SIGTERM)
        try:
            return self.wait(time.monotonic() + grace_s)
        except BootError:
            self.kill()
            raise BootError(f"QEMU did not end within {grace_s:g} s of SIGTERM; it was killed") from None

    def kill(self) -> None:
        """End QEMU if it still runs: SIGTERM, then SIGKILL after 2 s. Reaps it."""
        if self.child is not None:
            self.child.end(grace_s=2.0)
