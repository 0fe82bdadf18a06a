/* A payload that leaves a mark on the root filesystem: writes /marker with the boot
 * time, syncs it to disk, and reports. Tests read the file back from the disk image. */
#include <fcntl.h>
#include <stdlib.h>

#include "probe.h"

int main(void)
{
	char line[64];
	size_t len = 0;
	int fd;

	probe_init();
	put_str(line, &len, 40, "appliance-marker ");
	put_u64(line, &len, (unsigned long long)time(0));
	line[len++] = '\n';
	fd = open("/marker", O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || write(fd, line, len) != (ssize_t)len || fsync(fd) != 0)
		return 1;
	close(fd);
	sync();
	write(1, "marker: written\n", 16);
	return 0;
}
