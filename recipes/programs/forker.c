/* forker: a payload that starts a few processes, for profiled's process timeline.
 * It forks three children in turn; each execs /bin/forker again with "child N", which
 * allocates and touches N MiB, sleeps N*10 ms and exits with status N.
 * `forker background` leaves one child sleeping for a minute and exits at once: what
 * the init does with a payload's background processes at power-off. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int child(int n)
{
	struct timespec pause = {0, n * 10000000L};
	size_t size = (size_t)n << 20;
	char *memory = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (memory != MAP_FAILED)
		memset(memory, n, size);
	nanosleep(&pause, 0);
	return n;
}

int main(int argc, char **argv)
{
	char number[2] = {0, 0};
	int i, status, failed = 0;

	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(atoi(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "background")) {
		struct timespec minute = {60, 0};

		if (fork() == 0) {
			nanosleep(&minute, 0);
			_exit(0);
		}
		return 0;
	}
	for (i = 1; i <= 3; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			char *args[] = {"/bin/forker", "child", number, 0};

			number[0] = (char)('0' + i);
			execv(args[0], args);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != i)
			failed = 1;
	}
	return failed;
}
