/* The `benchmark` template's payload: a little real work, as an appliance would do.
 * It writes a 256 KiB file, reads it back and checksums it, lists /proc, then emits
 * the user probe "work_done" (0x20) and prints its result on the console.
 * `bench N` does the file work N times: a deliberate, known slowdown for tests of
 * the comparison (`appliance_payload="/bin/bench 50"` on the kernel command line). */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "probe.h"

#define SIZE (256 * 1024)

static unsigned long long fnv1a(const unsigned char *p, size_t n)
{
	unsigned long long h = 1469598103934665603ULL;

	while (n--)
		h = (h ^ *p++) * 1099511628211ULL;
	return h;
}

static int write_and_hash(unsigned long long *hash)
{
	static unsigned char buf[SIZE];
	size_t i;
	int fd;

	for (i = 0; i < SIZE; i++)
		buf[i] = (unsigned char)(i * 31 + 7);
	fd = open("/tmp/bench.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || write(fd, buf, SIZE) != SIZE)
		return -1;
	memset(buf, 0, SIZE);
	if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, buf, SIZE) != SIZE)
		return -1;
	close(fd);
	*hash = fnv1a(buf, SIZE);
	return 0;
}

static int count_proc_entries(void)
{
	DIR *dir = opendir("/proc");
	int n = 0;

	if (!dir)
		return -1;
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

int main(int argc, char **argv)
{
	unsigned long long hash = 0;
	char line[96];
	size_t len = 0;
	int entries, rounds = argc > 1 ? atoi(argv[1]) : 1;

	probe_init();
	mkdir("/tmp", 01777);
	do {
		if (write_and_hash(&hash) != 0)
			return 1;
	} while (--rounds > 0);
	entries = count_proc_entries();
	probe(0x20, "work_done");
	put_str(line, &len, 90, "bench: checksum ");
	put_u64(line, &len, hash);
	put_str(line, &len, 90, " proc entries ");
	put_u64(line, &len, entries < 0 ? 0 : (unsigned long long)entries);
	line[len++] = '\n';
	write(1, line, len);
	return entries < 0;
}
