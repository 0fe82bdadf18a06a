/* profiled: the guest tells the host what it did during the boot.
 *
 * Started by init (init.conf: "profiled DEVICE SAMPLE_MS") with a control pipe on fd 3,
 * it collects, as JSON lines (one record per line, "v" the format version, "t" the
 * CLOCK_BOOTTIME of the record in ns):
 *   hello    once, with its pid and what it can see
 *   mem      /proc/meminfo at each stage init names on the control pipe
 *   kmsg     every kernel log record from /dev/kmsg (sequence, level, printk time, text),
 *            read at the end (the ring buffer keeps them; size it with log_buf_len=)
 *   proc     fork/exec/exit of every process, from the kernel's process events connector
 *            (netlink; CONFIG_PROC_EVENTS), or one "note" saying it is unavailable
 *   stat     /proc/stat's cpu line and /proc/loadavg every SAMPLE_MS (0: never)
 *   ftrace   each line of the ftrace buffer, at the end, when the command line has
 *            trace_event= (initcall timing without the console: analyze --source ftrace)
 *   end      the record count, how many were dropped, and how many times the kernel log
 *            ring buffer wrapped before we read it (kmsg_lost: raise log_buf_len)
 * Records are kept in memory and written to DEVICE (a second serial port, or
 * "virtio-port:NAME": the virtio-console port QEMU named NAME, found by that name in
 * /sys/class/virtio-ports, whatever vportNpM the kernel numbered it) when init says "end" after the payload, so the channel's cost
 * lands after payload_end, not inside the measured phases. If the buffer fills, it is
 * written early. The console is never used.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define VERSION "1"
#define OUT_SIZE (1 << 20)
#define CONTROL_FD 3 /* init's stage names arrive here */
#define READY_FD 4   /* and we say "ready" here */

/* Netlink process events (linux/netlink.h, linux/connector.h, linux/cn_proc.h), declared
 * here because dietlibc's headers do not carry them. */
#define AF_NETLINK_ 16
#define NETLINK_CONNECTOR_ 11
#define CN_IDX_PROC_ 1
#define CN_VAL_PROC_ 1
#define PROC_CN_MCAST_LISTEN_ 1
#define EV_FORK 0x00000001u
#define EV_EXEC 0x00000002u
#define EV_EXIT 0x80000000u

struct nl_addr { unsigned short family, pad; unsigned int pid, groups; };
struct nl_hdr { unsigned int len; unsigned short type, flags; unsigned int seq, pid; };
struct cn_hdr { unsigned int idx, val, seq, ack; unsigned short len, flags; };
struct proc_ev {
	unsigned int what, cpu;
	unsigned long long timestamp_ns;
	unsigned int a, b, c, d, e, f; /* fork: ppid ptgid cpid ctgid; exec: pid tgid; exit: pid tgid code signal */
};

static char out[OUT_SIZE];
static size_t out_len;
static unsigned long records, dropped, kmsg_lost;
static int device = -1;
static const char *device_path;

#define PORT_PREFIX "virtio-port:"

/* The /dev node of the virtio-console port named NAME (sysfs' virtio-ports/<node>/name),
 * written into PATH; sysfs is mounted if it is not yet. */
static int find_port(const char *name, char *path, size_t size)
{
	char file[128], text[128];
	struct dirent *entry;
	DIR *dir;
	int found = -1;

	if (access("/sys/class", F_OK) != 0) {
		mkdir("/sys", 0555);
		mount("sysfs", "/sys", "sysfs", 0, 0);
	}
	dir = opendir("/sys/class/virtio-ports");
	if (!dir)
		return -1;
	while (found < 0 && (entry = readdir(dir))) {
		size_t len = 0;
		ssize_t got;
		int fd;

		if (entry->d_name[0] == '.' || strlen(entry->d_name) > 64)
			continue;
		put_str(file, &len, 100, "/sys/class/virtio-ports/");
		put_str(file, &len, 100, entry->d_name);
		put_str(file, &len, 120, "/name");
		file[len] = 0;
		fd = open(file, O_RDONLY);
		got = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (got <= 0)
			continue;
		text[got] = 0;
		if (text[got - 1] == '\n')
			text[got - 1] = 0;
		if (!strcmp(text, name) && strlen(entry->d_name) + 6 < size) {
			len = 0;
			put_str(path, &len, size - 1, "/dev/");
			put_str(path, &len, size - 1, entry->d_name);
			path[len] = 0;
			found = 0;
		}
	}
	closedir(dir);
	return found;
}

/* Open the channel on first use: opening a serial port runs the UART's start-up (many
 * emulated I/O accesses), which would otherwise land inside the measured boot. */
static int open_device(void)
{
	static char port[80];
	struct termios tio;

	if (device >= 0)
		return device;
	if (!strncmp(device_path, PORT_PREFIX, strlen(PORT_PREFIX))) {
		if (find_port(device_path + strlen(PORT_PREFIX), port, sizeof(port)) != 0)
			return -1;
		device_path = port;
	}
	device = open(device_path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (device >= 0 && tcgetattr(device, &tio) == 0) { /* a serial port: bytes as they are */
		cfmakeraw(&tio);
		tcsetattr(device, TCSANOW, &tio);
	}
	return device;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void flush_out(void)
{
	size_t done = 0;
	ssize_t n;

	if (open_device() < 0) {
		dropped += records;
		out_len = 0;
		return;
	}
	while (done < out_len) {
		n = write(device, out + done, out_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	out_len = 0;
}

/* One record: {"v":1,"t":T,"type":"TYPE",BODY} where BODY is already JSON. */
static void record(unsigned long long t, const char *type, const char *body, size_t body_len)
{
	char head[96];
	size_t len = 0;

	put_str(head, &len, sizeof(head), "{\"v\":" VERSION ",\"t\":");
	put_u64(head, &len, t);
	put_str(head, &len, sizeof(head), ",\"type\":\"");
	put_str(head, &len, sizeof(head), type);
	put_str(head, &len, sizeof(head), "\"");
	if (out_len + len + body_len + 3 > OUT_SIZE)
		flush_out();
	if (len + body_len + 3 > OUT_SIZE) {
		dropped++;
		return;
	}
	memcpy(out + out_len, head, len);
	out_len += len;
	if (body_len) {
		out[out_len++] = ',';
		memcpy(out + out_len, body, body_len);
		out_len += body_len;
	}
	out[out_len++] = '}';
	out[out_len++] = '\n';
	records++;
}

/* Append S as a JSON string (quoted, escaped) to BUF. */
static void put_json(char *buf, size_t *len, size_t cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (*len + 2 > cap)
		return;
	buf[(*len)++] = '"';
	for (i = 0; i < n && *len + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			buf[(*len)++] = '\\';
			buf[(*len)++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			put_str(buf, len, cap, "\\u00");
			buf[(*len)++] = hex[c >> 4];
			buf[(*len)++] = hex[c & 15];
		} else {
			buf[(*len)++] = (char)c;
		}
	}
	buf[(*len)++] = '"';
}

static void put_key(char *buf, size_t *len, size_t cap, const char *key, unsigned long long v, int comma)
{
	if (comma)
		put_str(buf, len, cap, ",");
	put_str(buf, len, cap, "\"");
	put_str(buf, len, cap, key);
	put_str(buf, len, cap, "\":");
	put_u64(buf, len, v);
}

static ssize_t read_file(int fd, char *buf, size_t cap)
{
	ssize_t n;

	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* The value (kB) of FIELD in /proc/meminfo's text, or 0. */
static unsigned long long meminfo_field(const char *text, const char *field)
{
	const char *p = text;
	size_t n = strlen(field);

	while ((p = strstr(p, field)) != 0) {
		if ((p == text || p[-1] == '\n') && p[n] == ':')
			return strtoull(p + n + 1, 0, 10);
		p += n;
	}
	return 0;
}

static void memory(int fd, const char *stage, size_t stage_len)
{
	static const char *fields[] = {"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "Shmem",
				       "SReclaimable", "Slab", "KernelStack", "PageTables"};
	char text[4096], body[640];
	size_t len = 0, i;

	if (read_file(fd, text, sizeof(text)) <= 0)
		return;
	put_str(body, &len, sizeof(body), "\"stage\":");
	put_json(body, &len, sizeof(body), stage, stage_len);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		put_key(body, &len, sizeof(body), fields[i], meminfo_field(text, fields[i]), 1);
	record(now_ns(), "mem", body, len);
}

/* /dev/kmsg: each read() is one record "PRI,SEQ,TS_US,FLAGS[,...];TEXT\n" plus optional
 * continuation lines (" KEY=VALUE") that we leave out. */
static void kernel_log(int fd)
{
	char buf[2048], body[2400];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf) - 1);
		if (n < 0 && errno == EPIPE) { /* overwritten before we read it: the next read resumes */
			kmsg_lost++;
			continue;
		}
		if (n <= 0)
			return;
		buf[n] = 0;
		char *semi = strchr(buf, ';'), *end, *p;
		unsigned long long pri, seq = 0, ts = 0;
		size_t len = 0;

		if (!semi)
			continue;
		pri = strtoull(buf, 0, 10);
		p = strchr(buf, ',');
		if (p) {
			seq = strtoull(p + 1, &p, 10);
			if (*p == ',')
				ts = strtoull(p + 1, 0, 10);
		}
		end = strchr(semi + 1, '\n');
		put_key(body, &len, sizeof(body), "seq", seq, 0);
		put_key(body, &len, sizeof(body), "level", pri & 7, 1);
		put_key(body, &len, sizeof(body), "facility", pri >> 3, 1);
		put_key(body, &len, sizeof(body), "ts_us", ts, 1);
		put_str(body, &len, sizeof(body), ",\"msg\":");
		put_json(body, &len, sizeof(body), semi + 1, end ? (size_t)(end - semi - 1) : strlen(semi + 1));
		record(now_ns(), "kmsg", body, len);
	}
}

static int proc_connector(void)
{
	struct nl_addr addr = {AF_NETLINK_, 0, 0, CN_IDX_PROC_};
	struct {
		struct nl_hdr nl;
		struct cn_hdr cn;
		unsigned int op;
	} __attribute__((packed)) msg;
	int fd = socket(AF_NETLINK_, SOCK_DGRAM, NETLINK_CONNECTOR_);

	if (fd < 0)
		return -1;
	addr.pid = (unsigned int)getpid();
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	msg.nl.len = sizeof(msg);
	msg.nl.type = 3; /* NLMSG_DONE: one message */
	msg.nl.pid = (unsigned int)getpid();
	msg.cn.idx = CN_IDX_PROC_;
	msg.cn.val = CN_VAL_PROC_;
	msg.cn.len = sizeof(unsigned int);
	msg.op = PROC_CN_MCAST_LISTEN_;
	if (send(fd, &msg, sizeof(msg), 0) != (ssize_t)sizeof(msg)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* /proc/PID/cmdline (the exec'd path and its arguments), best effort: the process may
 * already be gone. */
static size_t exec_path(unsigned int pid, char *buf, size_t cap)
{
	char path[40];
	size_t len = 0;
	int fd;
	ssize_t n;

	put_str(path, &len, sizeof(path), "/proc/");
	put_u64(path, &len, pid);
	put_str(path, &len, sizeof(path), "/cmdline");
	path[len] = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return 0;
	while (n > 0 && buf[n - 1] == 0)
		n--;
	for (ssize_t i = 0; i < n; i++) /* arguments are NUL-separated: show them with spaces */
		if (buf[i] == 0)
			buf[i] = ' ';
	buf[n] = 0;
	return (size_t)n;
}

static void process_events(int fd)
{
	char buf[4096], body[512], name[256];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		size_t off = 0;

		while (off + sizeof(struct nl_hdr) + sizeof(struct cn_hdr) + sizeof(struct proc_ev) <= (size_t)n) {
			struct nl_hdr *nl = (struct nl_hdr *)(buf + off);
			struct proc_ev ev;
			size_t len = 0, namelen;

			memcpy(&ev, buf + off + sizeof(struct nl_hdr) + sizeof(struct cn_hdr), sizeof(ev));
			if (ev.what == EV_FORK && ev.c == ev.d) { /* a new process, not a thread */
				put_str(body, &len, sizeof(body), "\"event\":\"fork\"");
				put_key(body, &len, sizeof(body), "pid", ev.c, 1);
				put_key(body, &len, sizeof(body), "ppid", ev.b, 1);
				record(ev.timestamp_ns, "proc", body, len);
			} else if (ev.what == EV_EXEC) {
				put_str(body, &len, sizeof(body), "\"event\":\"exec\"");
				put_key(body, &len, sizeof(body), "pid", ev.b, 1);
				namelen = exec_path(ev.b, name, sizeof(name));
				put_str(body, &len, sizeof(body), ",\"path\":");
				put_json(body, &len, sizeof(body), name, namelen);
				record(ev.timestamp_ns, "proc", body, len);
			} else if (ev.what == EV_EXIT && ev.a == ev.b) {
				put_str(body, &len, sizeof(body), "\"event\":\"exit\"");
				put_key(body, &len, sizeof(body), "pid", ev.b, 1);
				put_key(body, &len, sizeof(body), "status", ev.c, 1);
				record(ev.timestamp_ns, "proc", body, len);
			}
			if (nl->len < sizeof(struct nl_hdr))
				break;
			off += (nl->len + 3) & ~3u;
		}
	}
}

static void cpu_sample(int stat_fd, int load_fd)
{
	char text[512], load[128], body[700];
	size_t len = 0;
	char *nl;

	if (read_file(stat_fd, text, sizeof(text)) <= 0)
		return;
	nl = strchr(text, '\n');
	put_str(body, &len, sizeof(body), "\"cpu\":");
	put_json(body, &len, sizeof(body), text, nl ? (size_t)(nl - text) : strlen(text));
	if (read_file(load_fd, load, sizeof(load)) > 0) {
		nl = strchr(load, '\n');
		put_str(body, &len, sizeof(body), ",\"loadavg\":");
		put_json(body, &len, sizeof(body), load, nl ? (size_t)(nl - load) : strlen(load));
	}
	record(now_ns(), "stat", body, len);
}

static void note(const char *text)
{
	char body[300];
	size_t len = 0;

	put_str(body, &len, sizeof(body), "\"msg\":");
	put_json(body, &len, sizeof(body), text, strlen(text));
	record(now_ns(), "note", body, len);
}

/* Control lines from init: a stage name per line, "end" to stop. Lines may arrive in
 * pieces or several at once: the unfinished tail waits in PENDING. */
static char pending[256];
static size_t pending_len;

/* The ftrace buffer, when the boot traced events (trace_event= on the command line, as
 * `appliance analyze --source ftrace` asks): one "ftrace" record per line. tracefs is
 * mounted here, after payload_end, so the measured boot does not pay for it. */
static void trace_buffer(void)
{
	static char buf[65536], cmdline[4096];
	char body[600], *line, *nl;
	size_t have = 0, len;
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, cmdline, sizeof(cmdline) - 1);
	close(fd);
	cmdline[n > 0 ? n : 0] = 0;
	if (!strstr(cmdline, "trace_event="))
		return;
	mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, 0); /* EBUSY when already there */
	fd = open("/sys/kernel/tracing/trace", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		note("trace_event= given but no /sys/kernel/tracing/trace: the kernel lacks CONFIG_FTRACE?");
		return;
	}
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0 && have == 0)
			break;
		have += n > 0 ? (size_t)n : 0;
		buf[have] = 0;
		line = buf;
		while ((nl = strchr(line, '\n')) || (n <= 0 && *line)) {
			size_t line_len = nl ? (size_t)(nl - line) : strlen(line);

			if (line_len && line[0] != '#') {
				len = 0;
				put_str(body, &len, sizeof(body), "\"line\":");
				put_json(body, &len, sizeof(body), line, line_len > 500 ? 500 : line_len);
				record(now_ns(), "ftrace", body, len);
			}
			line += line_len + (nl != 0);
			if (!nl)
				break;
		}
		have = strlen(line);
		memmove(buf, line, have);
		if (n <= 0)
			break;
	}
	close(fd);
}

static int control(const char *buf, size_t n, int mem_fd)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (pending_len < sizeof(pending))
				pending[pending_len++] = buf[i];
			continue;
		}
		if (pending_len == 3 && !memcmp(pending, "end", 3))
			return 1;
		if (pending_len)
			memory(mem_fd, pending, pending_len);
		pending_len = 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pollfd fds[2];
	struct termios tio;
	char ctl[256], body[160];
	int sample_ms = argc > 2 ? atoi(argv[2]) : 0, done = 0, mem_fd, stat_fd, load_fd, kmsg_fd, proc_fd;
	size_t len = 0;
	ssize_t n;

	if (argc < 2)
		return 2;
	device_path = argv[1];
	mem_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	load_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	proc_fd = proc_connector();
	put_key(body, &len, sizeof(body), "pid", (unsigned long long)getpid(), 0);
	put_key(body, &len, sizeof(body), "kmsg", kmsg_fd >= 0, 1);
	put_key(body, &len, sizeof(body), "proc_events", proc_fd >= 0, 1);
	put_key(body, &len, sizeof(body), "sample_ms", (unsigned long long)sample_ms, 1);
	record(now_ns(), "hello", body, len);
	if (proc_fd < 0)
		note("no process events: the kernel lacks CONFIG_PROC_EVENTS (or CONFIG_NET/CONFIG_CONNECTOR)");
	if (kmsg_fd < 0)
		note("no kernel log: /dev/kmsg could not be opened");
	write(READY_FD, "ready\n", 6); /* init waits for this: no process event is missed */
	close(READY_FD);
	/* The kernel log is read once, at the end: it waits in the kernel's ring buffer, and
	 * formatting its backlog now would take the vCPU from the boot being measured. */
	fds[0].fd = CONTROL_FD;
	fds[1].fd = proc_fd; /* -1 without process events: poll() then skips it */
	fds[0].events = fds[1].events = POLLIN;
	while (!done) {
		int ready = poll(fds, 2, sample_ms > 0 ? sample_ms : -1);

		if (ready < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (ready == 0) {
			cpu_sample(stat_fd, load_fd);
			continue;
		}
		if (fds[1].revents & POLLIN)
			process_events(proc_fd);
		if (fds[0].revents & (POLLIN | POLLHUP)) {
			n = read(CONTROL_FD, ctl, sizeof(ctl));
			done = n <= 0 || control(ctl, (size_t)n, mem_fd);
		}
	}
	if (proc_fd >= 0)
		process_events(proc_fd);
	if (kmsg_fd >= 0)
		kernel_log(kmsg_fd);
	trace_buffer();
	len = 0;
	put_key(body, &len, sizeof(body), "records", records + 1, 0);
	put_key(body, &len, sizeof(body), "dropped", dropped, 1);
	put_key(body, &len, sizeof(body), "kmsg_lost", kmsg_lost, 1);
	record(now_ns(), "end", body, len);
	flush_out();
	if (device >= 0 && tcgetattr(device, &tio) == 0)
		tcdrain(device);
	return device >= 0 ? 0 : 3;
}
