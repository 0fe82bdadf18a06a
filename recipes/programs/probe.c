/* A probe from a script: `probe CODE NAME` emits the probe CODE (0x20-0x7f, a user
 * probe of the template's [probes]; or 0x17-0x1b, the systemd targets', the end of
 * its boot and its start, which the units and the generator added to an image booted by
 * its own init fire) as every
 * program of the appliance does: an outb
 * the host timestamps, and the console line with the guest's clock. */
#include <stdlib.h>

#include "probe.h"

int main(int argc, char **argv)
{
	unsigned long code;
	char *end;

	if (argc != 3)
		return 2;
	code = strtoul(argv[1], &end, 0);
	if (*end || code > 0x7f || (code < 0x20 && (code < 0x17 || code > 0x1b)))
		return 2;
	probe_init();
	probe((unsigned char)code, argv[2]);
	return 0;
}
