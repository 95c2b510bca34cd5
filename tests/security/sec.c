#include "sec.h"

#include <dirent.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/gntalloc.h>

long sec_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

void sec_usage(pid_t pid, struct usage *u)
{
	if (pid == 0)
		pid = tap_broker_pid();
	u->fds = tap_proc_fds(pid, &u->memfds);
	u->rss_kb = sec_rss_kb(pid);
}

void sec_usage_settled(pid_t pid, struct usage *u)
{
	struct usage prev;
	sec_usage(pid, &prev);
	for (int i = 0; i < 100; i++) {
		usleep(10 * 1000);
		sec_usage(pid, u);
		if (u->fds == prev.fds && u->memfds == prev.memfds)
			return;
		prev = *u;
	}
}

void sec_expect_back_of(pid_t pid, const struct usage *u0, int ms)
{
	struct usage u;
	double end = tap_now_ms() + ms;
	for (;;) {
		sec_usage(pid, &u);
		if ((u.fds == u0->fds && u.memfds == u0->memfds) || tap_now_ms() > end)
			break;
		usleep(10 * 1000);
	}
	if (u.fds != u0->fds || u.memfds != u0->memfds)
		tap_fail(__FILE__, __LINE__, "the broker holds %d fds (%d memfds), %d (%d) before",
			 u.fds, u.memfds, u0->fds, u0->memfds);
}

void sec_expect_back(const struct usage *u0, int ms)
{
	sec_expect_back_of(0, u0, ms);
}

int sec_grantctl_count(const char *what, const char *key, unsigned lo, unsigned hi)
{
	const char *exe = getenv("GRANTED_GRANTCTL");
	if (!exe)
		tap_fail(__FILE__, __LINE__, "GRANTED_GRANTCTL is not set");
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		unsetenv("LD_PRELOAD");
		execl(exe, "grantctl", what, "--json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	ssize_t n;
	while ((n = read(p[0], out + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 4096)
			out = realloc(out, cap *= 2);
	}
	close(p[0]);
	out[len] = '\0';
	int st = tap_wait(pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tap_fail(__FILE__, __LINE__, "grantctl %s --json: status %#x", what, st);
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	int count = 0;
	for (char *s = strstr(out, pat); s; s = strstr(s + 1, pat)) {
		unsigned v = (unsigned)strtoul(s + strlen(pat), NULL, 10);
		count += v >= lo && v <= hi;
	}
	free(out);
	return count;
}

void sec_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/granted-sec-XXXXXX");
	if (!mkdtemp(buf))
		tap_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	chmod(buf, 0755);
}

void sec_private_broker(struct private_broker *pb, bool with_log, uid_t uid)
{
	sec_tmpdir(pb->dir, sizeof(pb->dir));
	if (uid != 0)
		CHECK_OK(chown(pb->dir, uid, uid));
	snprintf(pb->sock, sizeof(pb->sock), "%s/socket", pb->dir);
	snprintf(pb->log, sizeof(pb->log), "%s/broker.log", pb->dir);
	pb->pid = sec_start_broker(pb->sock, with_log ? pb->log : NULL, uid);
	setenv("GRANTED_SOCKET", pb->sock, 1);
}

void sec_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

pid_t sec_start_broker(const char *sock, const char *log, uid_t uid)
{
	const char *exe = getenv("GRANTED_BROKER");
	if (!exe)
		tap_fail(__FILE__, __LINE__, "GRANTED_BROKER is not set");
	int p[2];
	CHECK_OK(pipe(p));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		close(p[0]);
		int err = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (err >= 0) {
			if (log && uid)
				fchown(err, uid, (gid_t)-1);
			dup2(err, 2);
			close(err);
		}
		if (uid && (setgid(uid) < 0 || setuid(uid) < 0))
			_exit(126);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", p[1]);
		execl(exe, "granted", "--socket", sock, "--ready-fd", fd, "--log-level",
		      log ? "info" : "warning", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char c;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	int ok = poll(&pfd, 1, 20000) == 1 && read(p[0], &c, 1) == 1;
	/* And until it closed its end: the fd count is then its own. */
	while (ok && poll(&pfd, 1, 5000) == 1 && read(p[0], &c, 1) > 0)
		;
	close(p[0]);
	if (!ok) {
		kill(pid, SIGKILL);
		tap_wait(pid);
		tap_fail(__FILE__, __LINE__, "the broker on %s did not start", sock);
	}
	return pid;
}

int sec_stop_broker(pid_t pid)
{
	kill(pid, SIGTERM);
	int status;
	double end = tap_now_ms() + 5000;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (tap_now_ms() > end) {
			/* It would never go: take it down, and say so. */
			kill(pid, SIGKILL);
			tap_wait(pid);
			tap_note("the broker %d ignored SIGTERM for 5 s: killed", (int)pid);
			return -1;
		}
		usleep(10 * 1000);
	}
	return status;
}

bool sec_file_contains(const char *file, const char *needle)
{
	FILE *fp = fopen(file, "re");
	char line[1024];
	bool found = false;
	while (fp && !found && fgets(line, sizeof(line), fp))
		found = strstr(line, needle) != NULL;
	if (fp)
		fclose(fp);
	return found;
}

void grant_make(struct grant *g, unsigned grantee, bool writable, char fill)
{
	tap_set_domid(1);
	g->fd = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
	CHECK_OK(g->fd);
	struct ioctl_gntalloc_alloc_gref op = { .domid = (uint16_t)grantee,
						.flags = writable ? GNTALLOC_FLAG_WRITABLE : 0,
						.count = 1 };
	CHECK_OK(ioctl(g->fd, IOCTL_GNTALLOC_ALLOC_GREF, &op));
	g->idx = op.index;
	g->ref = op.gref_ids[0];
	g->p = mmap(NULL, 4096u, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, (off_t)g->idx);
	CHECK(g->p != MAP_FAILED);
	memset(g->p, fill, 4096u);
}

void grant_free(struct grant *g)
{
	munmap(g->p, 4096u);
	close(g->fd);
}

void grant_intact(const struct grant *g, char fill)
{
	for (unsigned i = 0; i < 4096u; i++)
		if (g->p[i] != fill)
			tap_fail(__FILE__, __LINE__, "byte %u of domain 1's grant is %#x, not %#x",
				 i, (unsigned char)g->p[i], (unsigned char)fill);
}
