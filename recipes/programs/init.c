/* appliance init: PID 1 of every appliance, in the spirit of bslinit.
 *
 * It emits the boot probes, mounts what /etc/appliance/init.conf asks, runs the payload
 * (from the kernel command line's appliance_payload=, else from init.conf), reaps every
 * zombie, and then powers the machine off. QEMU runs with -no-reboot, so when power-off
 * is not available (x86 without ACPI) a reboot() ends QEMU just as well; aarch64 powers
 * off through PSCI.
 * Signals: SIGTERM and SIGUSR1 power off, SIGINT (Ctrl-Alt-Del) reboots.
 *
 * Order of work: init_start; load modules (each timed, in the listed order: the build
 * put dependencies first), init_modules_loaded; mount the root disk if any and switch
 * to it, init_root_mounted; the mounts; the payload; power off.
 *
 * init.conf, one directive per line, words separated by single spaces:
 *   module PATH NAME        load PATH with finit_module(); NAME is for messages
 *   modules_on_error stop|continue
 *   root DEVICE FSTYPE [dax] [overlay]   mount DEVICE as the new root (waits up to 30 s
 *                           for it to appear and open); erofs read-only; with overlay, under a tmpfs upper
 *                           layer (overlayfs), so the payload can write
 *   mount TYPE TARGET       e.g. "mount proc /proc"
 *   payload ARGV0 [ARG...]
 *   shell ARGV0 [ARG...]    after the payload (or without one), an interactive program on
 *                           the console, as a session leader with the console as its
 *                           controlling terminal (job control, Ctrl-C); power off when it exits
 *   after poweroff|reboot
 *   env NAME=VALUE          set in the payload's environment (a container image's Env)
 *   workdir DIR             the payload starts in DIR (an image's WorkingDir)
 *   user UID[:GID]          the payload runs as UID (and GID; else GID = UID), no
 *                           supplementary groups (an image's User)
 *   net IFACE ADDRESS NETMASK GATEWAY   bring up lo and IFACE (waits up to 5 s for it to
 *                           appear) with a default route, before the payload: no DHCP
 *                           client; probe init_net_up. A failure stops the boot.
 *   control PORT            with a network: a child listens on TCP PORT (the host
 *                           forwards a port to it) and, at the first byte, sends us SIGTERM:
 *                           the host's "stop" powers the machine off in the usual way
 *   exec_init PATH          after the root and the network, exec PATH (an image's /sbin/init,
 *                           systemd) as PID 1 instead of mounts, payload and power-off;
 *                           probe image_init just before
 *   profiled DEVICE SAMPLE_MS   start /bin/profiled first (it needs /proc and /dev, which
 *                           are then mounted at once) and tell it each stage over a
 *                           pipe on its fd 3: init_start, modules_loaded,
 *                           root_mounted, payload_end, then "end" (it writes its records
 *                           to DEVICE and exits; we wait for it before powering off)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>

#include "probe.h"

#define CONF "/etc/appliance/init.conf"
#define MAX_WORDS 256 /* a payload's argv, or the shell's (the build refuses more: initramfs.py) */
#define MAX_MODULES 256
#define MAX_MOUNTS 16

/* dietlibc has no finit_module() and no syscall(): the system call by hand
 * (x86_64: 313 through `syscall`; aarch64: 273 through `svc 0`). */
static int finit_module(int fd, const char *params, int flags)
{
	long ret;

#if defined(__x86_64__)
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(313L), "D"((long)fd), "S"(params), "d"((long)flags)
			 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = 273;
	register long x0 __asm__("x0") = fd;
	register long x1 __asm__("x1") = (long)params;
	register long x2 __asm__("x2") = flags;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	ret = x0;
#else
#error "finit_module: add this architecture's system call"
#endif
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return 0;
}

static volatile sig_atomic_t stop_request; /* 1: power off, 2: reboot */
static char conf[65536]; /* the build refuses a larger init.conf (initramfs.py) */
static char *payload[MAX_WORDS + 1], *shell[MAX_WORDS + 1];
#define MAX_ENV 256 /* an image's Env: Debian's carry dozens (the build refuses more) */
static char *payload_env[MAX_ENV];
static int payload_envs;
static char *payload_dir, *payload_user;
static int want_reboot;
static char *module_path[MAX_MODULES], *module_name[MAX_MODULES];
static int modules, modules_stop_on_error = 1;
static char *mount_type[MAX_MOUNTS], *mount_target[MAX_MOUNTS];
static int mounts;
static char *root_device, *root_fstype;
static int root_dax, root_overlay;
static char *profiled_device, *profiled_sample_ms;
static pid_t profiled_pid;
static int profiled_fd = -1, mounted_early;
static char *net_iface, *net_address, *net_netmask, *net_gateway;
static char *control_port;
static char *image_init; /* exec_init: the image's own init takes over as PID 1 */

static void profiled_stage(const char *stage)
{
	char line[64];
	size_t len = 0;

	if (profiled_fd < 0)
		return;
	put_str(line, &len, sizeof(line) - 1, stage);
	line[len++] = '\n';
	write(profiled_fd, line, len); /* one write: a line never arrives in pieces */
}

/* "LEAD: REASON" in a static buffer, for the end of a say() line. */
static const char *because(const char *lead, int err)
{
	static char text[200];
	size_t len = 0;

	put_str(text, &len, 120, lead);
	put_str(text, &len, 124, ": ");
	put_str(text, &len, 196, strerror(err));
	text[len] = 0;
	return text;
}

static void say(const char *a, const char *b, const char *c)
{
	char line[256];
	size_t len = 0;

	put_str(line, &len, 200, "appliance-init: ");
	put_str(line, &len, 200, a);
	put_str(line, &len, 220, b);
	put_str(line, &len, 240, c);
	line[len++] = '\n';
	write(2, line, len);
}

static sigset_t open_mask; /* the mask to sleep with, and the payload's */

static void on_signal(int sig)
{
	if (sig != SIGCHLD)
		stop_request = sig == SIGINT ? 2 : 1;
}

/* The stop signals and SIGCHLD stay blocked except inside sigsuspend(), so one that
 * arrives before we sleep is not lost (the payload may signal us at once). */
static void setup_signals(void)
{
	struct sigaction sa;
	sigset_t blocked;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGTERM, &sa, 0);
	sigaction(SIGUSR1, &sa, 0);
	sigaction(SIGINT, &sa, 0);
	sigaction(SIGCHLD, &sa, 0);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGCHLD);
	sigprocmask(SIG_BLOCK, &blocked, &open_mask);
	reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del now sends us SIGINT */
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode S in place: %XX is the byte XX (hex), so a word of init.conf carries spaces,
 * tabs, newlines, quotes and any other byte but NUL (initramfs.py: encode_word). */
static void decode(char *s)
{
	char *out = s;
	int hi, lo;

	for (; *s; s++) {
		if (*s == '%' && (hi = hexval(s[1])) >= 0 && (lo = hexval(s[2])) >= 0) {
			*out++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
}

static void decode_all(char **words)
{
	for (; *words; words++)
		decode(*words);
}

/* Split S in place at single spaces into at most MAX words; returns the count. */
static int split(char *s, char **words, int max)
{
	int n = 0;

	while (*s && n < max) {
		words[n++] = s;
		while (*s && *s != ' ')
			s++;
		if (*s)
			*s++ = 0;
	}
	words[n] = 0;
	return n;
}

static void do_mount(char *type, char *target)
{
	mkdir(target, 0755);
	if (mount(type, target, type, 0, 0) != 0 && errno != EBUSY)
		say("mount failed: ", type, because("", errno));
}

static void read_conf(void)
{
	char *line, *next, *words[MAX_WORDS + 1];
	int fd = open(CONF, O_RDONLY), n;
	ssize_t got;

	if (fd < 0)
		return;
	got = read(fd, conf, sizeof(conf) - 1);
	close(fd);
	if (got <= 0)
		return;
	conf[got] = 0;
	for (line = conf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		n = split(line, words, MAX_WORDS);
		if (n == 3 && !strcmp(words[0], "mount") && mounts < MAX_MOUNTS) {
			mount_type[mounts] = words[1];
			mount_target[mounts++] = words[2];
		} else if (n == 3 && !strcmp(words[0], "module") && modules < MAX_MODULES) {
			module_path[modules] = words[1];
			module_name[modules++] = words[2];
		} else if (n == 2 && !strcmp(words[0], "modules_on_error")) {
			modules_stop_on_error = strcmp(words[1], "continue") != 0;
		} else if (n >= 3 && !strcmp(words[0], "root")) {
			root_device = words[1];
			root_fstype = words[2];
			root_dax = (n > 3 && !strcmp(words[3], "dax")) || (n > 4 && !strcmp(words[4], "dax"));
			root_overlay = (n > 3 && !strcmp(words[3], "overlay")) || (n > 4 && !strcmp(words[4], "overlay"));
		} else if (n >= 2 && !strcmp(words[0], "payload")) {
			memcpy(payload, words + 1, (size_t)n * sizeof(char *));
			decode_all(payload);
		} else if (n >= 2 && !strcmp(words[0], "shell")) {
			memcpy(shell, words + 1, (size_t)n * sizeof(char *));
			decode_all(shell);
		} else if (n == 3 && !strcmp(words[0], "profiled")) {
			profiled_device = words[1];
			profiled_sample_ms = words[2];
		} else if (n == 5 && !strcmp(words[0], "net")) {
			net_iface = words[1];
			net_address = words[2];
			net_netmask = words[3];
			net_gateway = words[4];
		} else if (n == 2 && !strcmp(words[0], "exec_init")) {
			image_init = words[1];
		} else if (n == 2 && !strcmp(words[0], "control")) {
			control_port = words[1];
		} else if (n == 2 && !strcmp(words[0], "after")) {
			want_reboot = !strcmp(words[1], "reboot");
		} else if (n == 2 && !strcmp(words[0], "env") && payload_envs < MAX_ENV) {
			decode(words[1]);
			payload_env[payload_envs++] = words[1];
		} else if (n == 2 && !strcmp(words[0], "workdir")) {
			decode(words[1]);
			payload_dir = words[1];
		} else if (n == 2 && !strcmp(words[0], "user")) {
			payload_user = words[1];
		} else if (n > 0) {
			say("ignored config line: ", words[0], "");
		}
	}
}

static unsigned long long boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/* Load one module; prints "appliance-module: NAME START_NS DURATION_NS". 0 on success,
 * 1 when the module refuses with ENODEV: an accelerated implementation (crc32c_intel,
 * aesni) whose CPU feature or device this machine lacks; the kernel then uses its
 * generic code, so the appliance goes on with a note instead of stopping. */
static int load_module(const char *path, const char *name)
{
	unsigned long long start = boottime_ns();
	char line[160];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc, err;

	rc = fd < 0 ? -1 : finit_module(fd, "", 0);
	err = errno;
	if (fd >= 0)
		close(fd);
	if (rc != 0 && err == ENODEV) {
		say("module ", name, " skipped: no such device (the CPU or machine lacks what it accelerates)");
		return 1;
	}
	if (rc != 0 && err != EEXIST) {
		say("module ", name, because(" failed", err));
		return -1;
	}
	put_str(line, &len, 100, "appliance-module: ");
	put_str(line, &len, 140, name);
	line[len++] = ' ';
	put_u64(line, &len, start);
	line[len++] = ' ';
	put_u64(line, &len, boottime_ns() - start);
	line[len++] = '\n';
	write(1, line, len);
	return 0;
}

static int load_modules(void)
{
	int i;

	for (i = 0; i < modules; i++) {
		if (load_module(module_path[i], module_name[i]) < 0 && modules_stop_on_error) {
			say("stopping: module ", module_name[i], " did not load");
			return -1;
		}
	}
	if (modules) {
		probe(0x11, "init_modules_loaded");
		profiled_stage("modules_loaded");
	}
	return 0;
}

/* How long the root device may take to appear and become usable (a module that probes
 * it slowly on a loaded host: nfit took 1.7 s once; initramfs-tools' rootdelay waits 30 s);
 * appliance_rootwait=SECONDS on the kernel command line sets another. */
#define ROOT_WAIT_S 30

static long root_wait_s(void)
{
	const char *given = getenv("appliance_rootwait"); /* kernel passes unknown k=v to init */
	char *end;
	long seconds = given ? strtol(given, &end, 10) : -1;
	return given && *given && !*end && seconds >= 0 && seconds <= 3600 ? seconds : ROOT_WAIT_S;
}

static int root_not_ready(int err)
{
	return err == ENOENT || err == ENXIO || err == ENODEV || err == ENOMEDIUM || err == EBUSY;
}

/* Mount the root device on AT, retrying while the device is not ready yet (its node
 * missing, or there but not openable) until ROOT_WAIT_S have passed. */
static int mount_root_device(const char *at, unsigned long flags)
{
	struct timespec now, pause_10ms = {0, 10000000};
	long wait_s = root_wait_s();
	time_t until;

	clock_gettime(CLOCK_MONOTONIC, &now);
	until = now.tv_sec + wait_s;
	for (;;) {
		if (mount(root_device, at, root_fstype, flags, root_dax ? "dax" : 0) == 0)
			return 0;
		int err = errno;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!root_not_ready(err) || now.tv_sec >= until) {
			char reason[200];
			size_t len = 0;
			if (root_not_ready(err)) { /* one line: the boot's error names the deadline */
				put_str(reason, &len, 40, " (did not become usable within ");
				put_u64(reason, &len, (unsigned long long)wait_s);
				put_str(reason, &len, 80, " s; appliance_rootwait=SECONDS waits longer)");
			}
			reason[len] = 0;
			say("cannot mount root ", root_device, because(reason, err));
			return -1;
		}
		nanosleep(&pause_10ms, 0);
	}
}

/* The root filesystem on AT: read-only for erofs; with an overlay, AT is its lower
 * layer and /newroot the overlay with a tmpfs upper layer (writes live in RAM). */
static int mount_root(const char *at)
{
	unsigned long flags = strcmp(root_fstype, "erofs") ? 0 : MS_RDONLY;

	mkdir(at, 0755);
	if (mount_root_device(at, flags) != 0)
		return -1;
	if (!root_overlay)
		return 0;
	mkdir("/rw", 0755);
	if (mount("tmpfs", "/rw", "tmpfs", 0, "mode=0755") != 0 || mkdir("/rw/upper", 0755) != 0 ||
	    mkdir("/rw/work", 0755) != 0 ||
	    mount("overlay", "/newroot", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work") != 0) {
		say("cannot mount the writable overlay on the root", because("", errno), "");
		return -1;
	}
	return 0;
}

/* Mount the root disk on /newroot and make it /, waiting up to ROOT_WAIT_S for the device. */
static int switch_root(void)
{
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
	mkdir("/newroot", 0755);
	if (mount_root(root_overlay ? "/lower" : "/newroot") != 0)
		return -1;
	umount2("/dev", MNT_DETACH);
	if (chdir("/newroot") != 0 || mount(".", "/", 0, MS_MOVE, 0) != 0 || chroot(".") != 0 || chdir("/") != 0) {
		say("cannot switch to the new root: ", strerror(errno), "");
		return -1;
	}
	probe(0x12, "init_root_mounted");
	profiled_stage("root_mounted");
	return 0;
}

/* Wait for PID, reaping every other zombie on the way; returns its wait status, or -1
 * when a stop was requested first. Sleeps only in sigsuspend(), with signals open. */
static int wait_for(pid_t pid)
{
	int status;
	pid_t got;

	for (;;) {
		while ((got = waitpid(-1, &status, WNOHANG)) > 0)
			if (got == pid)
				return status;
		if (got < 0 && errno == ECHILD)
			return 0;
		if (stop_request)
			return -1;
		sigsuspend(&open_mask);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, 0);
}

static int set_address(int s, const char *iface, unsigned long request, const char *text)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, iface, IFNAMSIZ - 1);
	sin->sin_family = AF_INET;
	if (inet_aton(text, &sin->sin_addr) == 0) {
		errno = EINVAL;
		return -1;
	}
	return ioctl(s, request, &ifr);
}

/* Set IFACE up; with WAIT, wait up to 5 s for it to exist (a driver probes its device
 * asynchronously on some transports). */
static int set_up(int s, const char *iface, int wait)
{
	struct ifreq ifr;

	for (int tries = 0;; tries++) {
		memset(&ifr, 0, sizeof(ifr));
		strncpy(ifr.ifr_name, iface, IFNAMSIZ - 1);
		if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
			break;
		if (!wait || errno != ENODEV || tries >= 500)
			return -1;
		sleep_ms(10);
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static int default_route(int s, const char *gateway)
{
	struct rtentry rt;
	struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;

	memset(&rt, 0, sizeof(rt));
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	gw->sin_family = AF_INET;
	if (inet_aton(gateway, &gw->sin_addr) == 0) {
		errno = EINVAL;
		return -1;
	}
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	return ioctl(s, SIOCADDRT, &rt);
}

/* lo, then the interface with its address and a default route (QEMU's user network
 * answers at the gateway). 0 on success; else says which step failed. */
static int net_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	const char *step = "socket";

	if (s < 0)
		goto fail;
	step = "lo";
	if (set_up(s, "lo", 0) != 0)
		goto fail;
	step = "interface";
	if (set_up(s, net_iface, 1) != 0)
		goto fail;
	step = "address";
	if (set_address(s, net_iface, SIOCSIFADDR, net_address) != 0 ||
	    set_address(s, net_iface, SIOCSIFNETMASK, net_netmask) != 0)
		goto fail;
	step = "default route";
	if (default_route(s, net_gateway) != 0)
		goto fail;
	close(s);
	probe(0x15, "init_net_up");
	return 0;
fail:
	if (errno == ENODEV)
		say("no network interface ", net_iface, ": is its driver (virtio_net) in the kernel?");
	else if (errno == EAFNOSUPPORT)
		say("no network interface ", net_iface, ": the kernel has no IPv4 (CONFIG_INET)");
	say("stopping: network setup failed at ", step, because("", errno));
	if (s >= 0)
		close(s);
	return -1;
}

/* The host's stop channel: a child listening on TCP port PORT (the runner forwards a
 * host port to it). The first byte of any connection asks us, PID 1, to power off; the
 * answer "ok" tells the host it arrived (QEMU alone would accept and then close).
 * A socket rather than a virtio-serial port: on Debian's 6.1 kernel, virtio_console's
 * shutdown hook hung the power-off now and then under TCG. */
static void start_control(void)
{
	struct sockaddr_in addr;
	pid_t pid = fork();
	int s, one = 1;
	char byte;

	if (pid != 0)
		return;
	sigprocmask(SIG_SETMASK, &open_mask, 0);
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(control_port));
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(s, 4) != 0) {
		say("no stop channel on port ", control_port, because("", errno));
		_exit(1);
	}
	for (;;) {
		int c = accept(s, 0, 0);

		if (c >= 0 && read(c, &byte, 1) == 1) {
			write(c, "ok\n", 3); /* the host knows the request arrived */
			kill(1, SIGTERM);
			_exit(0);
		}
		if (c >= 0)
			close(c);
	}
}

/* Start profiled and wait (up to 5 s) until it listens, so no process event is missed.
 * Two pipes, not a socket: a kernel without networking (the minimal one) has no AF_UNIX.
 * profiled reads stage names on its fd 3 and says "ready" on its fd 4. */
static void start_profiled(void)
{
	char *argv[] = {"/bin/profiled", profiled_device, profiled_sample_ms, 0};
	struct pollfd ready;
	char line[8];
	int ctl[2], back[2];

	do_mount("proc", "/proc");
	do_mount("devtmpfs", "/dev");
	mounted_early = 1;
	if (pipe(ctl) != 0 || pipe(back) != 0) {
		say("cannot start profiled: ", strerror(errno), "");
		return;
	}
	profiled_pid = fork();
	if (profiled_pid == 0) {
		sigprocmask(SIG_SETMASK, &open_mask, 0);
		/* move the child's ends to 3 and 4 without clobbering one with the other */
		int in = fcntl(ctl[0], F_DUPFD, 10), out = fcntl(back[1], F_DUPFD, 10);

		dup2(in, 3);
		dup2(out, 4);
		for (int fd = 5; fd < 20; fd++)
			close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	close(ctl[0]);
	close(back[1]);
	if (profiled_pid < 0) {
		close(ctl[1]);
		close(back[0]);
		say("cannot start profiled: ", strerror(errno), "");
		return;
	}
	profiled_fd = ctl[1];
	ready.fd = back[0];
	ready.events = POLLIN;
	if (poll(&ready, 1, 5000) <= 0 || read(back[0], line, sizeof(line)) <= 0)
		say("profiled did not start (its records will be missing)", "", "");
	close(back[0]);
	profiled_stage("init_start");
}

/* Tell profiled to write its records and wait for it to exit. */
static void stop_profiled(void)
{
	if (profiled_fd < 0)
		return;
	profiled_stage("end");
	close(profiled_fd);
	profiled_fd = -1;
	wait_for(profiled_pid);
}

/* In the payload's child: its environment, folder and user (an image's Env, WorkingDir
 * and User); a failure ends the child with 127, as a failed exec does. */
static void payload_context(void)
{
	int i;
	char *colon;
	unsigned long uid, gid;

	for (i = 0; i < payload_envs; i++)
		putenv(payload_env[i]);
	if (payload_dir && chdir(payload_dir) != 0) {
		say("cannot enter the payload's folder ", payload_dir, because("", errno));
		_exit(127);
	}
	if (payload_user) {
		/* the build checked UID[:GID] (initramfs.py); never wrap an out-of-range id to 0 */
		uid = strtoul(payload_user, &colon, 10);
		gid = *colon == ':' ? strtoul(colon + 1, 0, 10) : uid;
		if (uid > 0xfffffffeUL || gid > 0xfffffffeUL) {
			say("cannot become the payload's user ", payload_user, ": id out of range");
			_exit(126);
		}
		if (setgroups(0, 0) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) {
			say("cannot become the payload's user ", payload_user, because("", errno));
			_exit(127);
		}
	}
}

static void run_payload(void)
{
	char code[16];
	size_t len = 0;
	int status;
	pid_t pid;

	probe(0x13, "payload_start");
	pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &open_mask, 0);
		setsid();
		payload_context();
		execv(payload[0], payload);
		say("cannot exec payload ", payload[0], because("", errno));
		_exit(127);
	}
	status = pid < 0 ? -1 : wait_for(pid);
	probe(0x14, "payload_end");
	profiled_stage("payload_end");
	if (stop_request) {
		say(stop_request == 2 ? "reboot" : "power-off", " requested by signal; payload stopped", "");
	} else if (status >= 0 && WIFEXITED(status)) {
		put_u64(code, &len, (unsigned long long)WEXITSTATUS(status));
		code[len] = 0;
		say("payload exited with status ", code, "");
	} else {
		say("payload did not exit normally", "", "");
	}
}

/* The shell gets the console as its controlling terminal: without one, Ctrl-C would
 * not reach it and busybox sh turns job control off. */
static void run_shell(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &open_mask, 0);
		setsid();
		ioctl(0, TIOCSCTTY, 1);
		execv(shell[0], shell);
		say("cannot exec shell ", shell[0], because("", errno));
		_exit(127);
	}
	if (pid > 0)
		wait_for(pid);
	say("shell exited", "", "");
}

/* Before the kernel shuts its devices down: every process gone (a killed server's
 * sockets send their last packets as it exits) and the interface down, so no packet is
 * in flight when virtio_net is reset. Without this, a power-off with a live connection
 * hung now and then under TCG (seen with busybox httpd on Debian's 6.1 kernel). */
/* Say which of our processes are still running at power-off (a payload's background
 * children): they are killed next, which the user should know. Kernel threads (pid 2
 * and its children) and zombies are not ours to report. /proc is mounted if need be. */
static void report_survivors(void)
{
	DIR *dir = access("/proc/self", F_OK) == 0 ? opendir("/proc") : 0;
	struct dirent *entry;

	if (!dir) {
		mkdir("/proc", 0555);
		if (mount("proc", "/proc", "proc", 0, 0) != 0 || !(dir = opendir("/proc")))
			return;
	}
	while ((entry = readdir(dir))) {
		char path[64], stat_line[256], what[96], *name, *end;
		size_t len = 0, n = 0;
		ssize_t got;
		int fd;

		if (entry->d_name[0] < '1' || entry->d_name[0] > '9' || !strcmp(entry->d_name, "1"))
			continue;
		put_str(path, &len, 40, "/proc/");
		put_str(path, &len, 56, entry->d_name);
		put_str(path, &len, 62, "/stat");
		path[len] = 0;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		got = read(fd, stat_line, sizeof(stat_line) - 1);
		close(fd);
		if (got <= 0)
			continue;
		stat_line[got] = 0;
		name = strchr(stat_line, '(');
		end = strrchr(stat_line, ')');
		/* after ")": " STATE PPID ..." */
		if (!name || !end || end[1] != ' ' || end[2] == 'Z' || !strcmp(entry->d_name, "2") ||
		    !strncmp(end + 4, "2 ", 2))
			continue;
		end[1] = 0;
		put_str(what, &n, 40, entry->d_name);
		put_str(what, &n, 41, " ");
		put_str(what, &n, 90, name);
		what[n] = 0;
		say("still running at power-off, killed: pid ", what, "");
	}
	closedir(dir);
}

static void quiesce(void)
{
	report_survivors();
	kill(-1, SIGKILL);
	for (int i = 0; i < 100 && waitpid(-1, 0, WNOHANG) >= 0; i++)
		sleep_ms(5);
	if (net_iface) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct ifreq ifr;

		memset(&ifr, 0, sizeof(ifr));
		strncpy(ifr.ifr_name, net_iface, IFNAMSIZ - 1);
		if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags &= ~IFF_UP;
			ioctl(s, SIOCSIFFLAGS, &ifr);
		}
		if (s >= 0)
			close(s);
	}
}

#if defined(__aarch64__)
#define POWER_OFF_ALWAYS 1 /* PSCI's SYSTEM_OFF: every arm64 virt guest has it */
#else
#define POWER_OFF_ALWAYS 0
#endif

static void power_off(void)
{
	stop_profiled();
	sync();
	quiesce();
	/* Power-off without a power-off method halts the CPU and QEMU would wait forever;
	 * ACPI in sysfs means the kernel has one. Otherwise reboot: -no-reboot exits. */
	if (!want_reboot && stop_request != 2 && (POWER_OFF_ALWAYS || access("/sys/firmware/acpi", F_OK) == 0))
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;) /* not pause(): dietlibc's aarch64 build has none (no such system call there) */
		sleep_ms(1000);
}

/* The image's own init (systemd) becomes PID 1 with the kernel's arguments: our part
 * (modules, the root, the network) is done; the probes of the units the build added to
 * the image tell the rest. Signals are unblocked first: execve keeps the mask. */
static void exec_image_init(char **argv)
{
	argv[0] = image_init;
	sigprocmask(SIG_SETMASK, &open_mask, 0);
	probe(0x16, "image_init");
	execv(image_init, argv);
	say("cannot exec the image's init ", image_init, because("", errno));
	power_off();
}

int main(int argc, char **argv, char **envp)
{
	char *from_cmdline;

	(void)argc;
	(void)argv;
	(void)envp;
	probe_init();
	probe(0x10, "init_start");
	/* the kernel gives init no PATH: programs from packages (shells, Python) expect one */
	if (!getenv("PATH"))
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setup_signals();
	read_conf();
	if (profiled_device)
		start_profiled();
	if (load_modules() != 0 || (root_device && switch_root() != 0))
		power_off();
	for (int i = 0; i < mounts; i++) {
		int early = mounted_early && !root_device &&
			    (!strcmp(mount_type[i], "proc") || !strcmp(mount_type[i], "devtmpfs"));

		if (!early) /* profiled's start mounted it already */
			do_mount(mount_type[i], mount_target[i]);
	}
	if (net_iface && net_up() != 0)
		power_off();
	if (image_init)
		exec_image_init(argv);
	if (control_port)
		start_control();
	from_cmdline = getenv("appliance_payload"); /* kernel passes unknown k=v to init */
	if (from_cmdline && *from_cmdline) {
		split(from_cmdline, payload, MAX_WORDS);
		decode_all(payload);
	}
	if (payload[0] && !stop_request)
		run_payload();
	if (shell[0] && !stop_request)
		run_shell();
	power_off();
	return 0;
}
