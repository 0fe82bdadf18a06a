/* Guest side of the probe protocol (shared/DESIGN.md): one outb of CODE to port 0xf4,
 * timestamped by the host, plus an "appliance-probe: NAME NS" console line carrying
 * CLOCK_BOOTTIME so a host without port capture still gets guest-side times.
 * probe_init() must be called first: without ioperm() an outb would kill the caller
 * (kernels built without CONFIG_X86_IOPL_IOPERM refuse it), so then only the line
 * is written. */
#ifndef APPLIANCE_PROBE_H
#define APPLIANCE_PROBE_H

#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOCK_BOOTTIME
#define CLOCK_BOOTTIME 7
#endif

#define PROBE_PORT 0xf4

static int probe_port_ok;
/* The exit channel (NEMU's method) boots once per probe point with isa-debug-exit on
 * the port: the kernel command line's appliance_exit_probe=NAME (handed to init, and
 * from init to the payload, as an environment variable) names the one probe allowed to
 * write the port, so QEMU ends exactly there. */
static const char *probe_exit_only;

static __attribute__((unused)) void probe_init(void)
{
	probe_port_ok = ioperm(PROBE_PORT, 2, 1) == 0;
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
		outb(code, PROBE_PORT);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	put_str(line, &len, 64, "appliance-probe: ");
	put_str(line, &len, 90, name);
	line[len++] = ' ';
	put_u64(line, &len, (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
	line[len++] = '\n';
	write(1, line, len);
}

#endif
