"""The python template's payload: some real work, a checksum of it, and a probe.

The probe follows the protocol of shared/DESIGN.md without any helper program: one
byte written to I/O port 0xf4 through /dev/port (the host timestamps it) and the
console line carrying the guest's CLOCK_BOOTTIME.
"""

import hashlib
import os
import sys
import time

WORK_DONE = 0x20
PORT = 0xF4


def probe(code: int, name: str) -> None:
    try:
        fd = os.open("/dev/port", os.O_WRONLY)
        os.pwrite(fd, bytes([code]), PORT)
        os.close(fd)
    except OSError as exc:  # a kernel without /dev/port: the console line still counts
        print(f"payload: no /dev/port ({exc.strerror})")
    print(f"appliance-probe: {name} {time.clock_gettime_ns(time.CLOCK_BOOTTIME)}", flush=True)


def main() -> int:
    digest = hashlib.sha256()
    for i in range(2000):
        digest.update(f"appliance {i}\n".encode())
    print(f"python {sys.version.split()[0]} checksum {digest.hexdigest()}", flush=True)
    probe(WORK_DONE, "work_done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
