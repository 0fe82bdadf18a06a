/* A payload that reports its argv exactly: one console line per argument, each byte as
 * two hex digits, so a test can check that spaces, tabs, newlines, quotes and non-ASCII
 * reached execv() intact (init.conf carries them %-encoded). */
#include <string.h>
#include <unistd.h>

static const char HEX[] = "0123456789abcdef";

int main(int argc, char **argv)
{
	char line[4096];
	int i;

	for (i = 0; i < argc; i++) {
		size_t len = 0, k;

		memcpy(line, "appliance-arg: ", 15);
		len = 15;
		for (k = 0; argv[i][k] && len + 3 < sizeof(line); k++) {
			line[len++] = HEX[(unsigned char)argv[i][k] >> 4];
			line[len++] = HEX[(unsigned char)argv[i][k] & 15];
		}
		line[len++] = '\n';
		if (write(1, line, len) != (ssize_t)len)
			return 1;
	}
	return 0;
}
