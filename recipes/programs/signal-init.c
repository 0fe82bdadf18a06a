/* A payload that asks the init to stop: sends PID 1 the signal named by argv[1]
 * (TERM or USR1: power off; INT: reboot) and then waits to be killed. Used by the tests
 * of init's signal handling, and usable by any appliance that wants to stop itself. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int sig = SIGTERM;

	if (argc > 1 && !strcmp(argv[1], "USR1"))
		sig = SIGUSR1;
	else if (argc > 1 && !strcmp(argv[1], "INT"))
		sig = SIGINT;
	if (kill(1, sig) != 0)
		return 1;
	for (;;) /* not pause(): dietlibc's aarch64 build has none */
		sleep(60);
}
