/* Guest side of the probe protocol (docs/CONTRACTS.md): one outb of CODE to port 0xf4,
 * timestamped by the host, plus an "appliance-probe: NAME NS" console line carrying
 * CLOCK_BOOTTIME so a host without port capture still gets guest-side times.
 * probe_init() must be called first: without ioperm() an outb would kill the caller
 * (kernels built without CONFIG_X86_IOPL_IOPERM refuse it), so then only the line
 * is written. */
#ifndef APPLIANCE_PROBE_H
#define APPLIANCE_PROBE_H

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <sys/io.h>
#elif defined(__aarch64__)
#include <fcntl.h>
#include <sys/mman.h>
#endif
#include <time.h>
#include <unistd.h>

#ifndef CLOCK_BOOTTIME
#define CLOCK_BOOTTIME 7
#endif

#define PROBE_PORT 0xf4

static int probe_port_ok;
#if defined(__aarch64__)
/* aarch64 has no I/O ports: the probe is a 32-bit write of CODE to PROBE_MMIO, a register
 * of QEMU virt's lowest virtio-mmio transport, which never has a device (QEMU fills them
 * from the highest address down) and ignores writes; QEMU's write trace times it as on
 * x86. Reached through /dev/mem (the initramfs carries the node: the init probes before
 * it mounts devtmpfs). The table and the address: docs/MEASUREMENT.md. */
#define PROBE_MMIO 0x0a0000fcUL
static volatile unsigned int *probe_mmio;
#endif
/* The exit channel (NEMU's method) boots once per probe point with isa-debug-exit on
 * the port: the kernel command line's appliance_exit_probe=NAME (handed to init, and
 * from init to the payload, as an environment variable) names the one probe allowed to
 * write the port, so QEMU ends exactly there. */
static const char *probe_exit_only;

static __attribute__((unused)) void probe_init(void)
{
#if defined(__x86_64__)
	probe_port_ok = ioperm(PROBE_PORT, 2, 1) == 0;
#elif defined(__aarch64__)
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	void *page = fd < 0 ? MAP_FAILED
			    : mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (long)(PROBE_MMIO & ~0xfffUL));

	if (fd >= 0)
		close(fd);
	probe_port_ok = page != MAP_FAILED;
	if (probe_port_ok)
		probe_mmio = (volatile unsigned int *)((char *)page + (PROBE_MMIO & 0xfffUL));
#endif
	probe_exit_only = getenv("appliance_exit_probe");
}

/* Append the decimal form of V to BUF at *LEN. */
static void put_u64(char *buf, size_t *len, unsigned long long v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		buf[(*len)++] = digits[--n];
}

static void put_str(char *buf, size_t *len, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n > cap - *len)
		n = cap - *len;
	memcpy(buf + *len, s, n);
	*len += n;
}

static __attribute__((unused)) void probe(unsigned char code, const char *name)
{
	struct timespec ts;
	char line[128];
	size_t len = 0;

	if (probe_port_ok && (!probe_exit_only || !strcmp(probe_exit_only, name)))
#if defined(__x86_64__)
		outb(code, PROBE_PORT);
#elif defined(__aarch64__)
		*probe_mmio = code;
#endif
	clock_gettime(CLOCK_BOOTTIME, &ts);
	put_str(line, &len, 64, "appliance-probe: ");
	put_str(line, &len, 90, name);
	line[len++] = ' ';
	put_u64(line, &len, (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
	line[len++] = '\n';
	write(1, line, len);
}

#endif
