#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 256

static struct {
	const char *name;
	tap_fn fn;
	unsigned timeout;
} tests[MAX_TESTS];
static int ntests;
static pid_t broker_pid;
static char tmpdir[64];

void tap_register(const char *name, tap_fn fn, unsigned timeout_s)
{
	if (ntests < MAX_TESTS)
		tests[ntests++] = (__typeof__(tests[0])){ name, fn, timeout_s };
}

void tap_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stdout, "# [%d] %s:%d: ", (int)getpid(), file, line);
	vfprintf(stdout, fmt, ap);
	fprintf(stdout, "\n");
	va_end(ap);
	fflush(stdout);
	_exit(1);
}

void tap_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stdout, "# ");
	vfprintf(stdout, fmt, ap);
	fprintf(stdout, "\n");
	va_end(ap);
	fflush(stdout);
}

double tap_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int tap_count_fds(void)
{
	return tap_proc_fds(getpid(), NULL);
}

int tap_proc_fds(pid_t pid, int *memfds)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	int n = 0, m = 0;
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (pid == getpid() && atoi(de->d_name) == dirfd(d))
			continue;
		n++;
		if (memfds) {
			char link[PATH_MAX], target[PATH_MAX];
			snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
			ssize_t k = readlink(link, target, sizeof(target) - 1);
			if (k > 0) {
				target[k] = '\0';
				if (strncmp(target, "/memfd:", 7) == 0)
					m++;
			}
		}
	}
	closedir(d);
	if (memfds)
		*memfds = m;
	return n;
}

pid_t tap_broker_pid(void)
{
	return broker_pid;
}

void tap_set_domid(unsigned domid)
{
	char buf[16];
	snprintf(buf, sizeof(buf), "%u", domid);
	setenv("GRANTED_DOMID", buf, 1);
}

/* Closes every fd above stdio but keep[0..n). */
static void close_inherited(const int *keep, int n)
{
	DIR *d = opendir("/proc/self/fd");
	int fds[1024], nfds = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) && nfds < 1024) {
		int fd = atoi(de->d_name);
		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		bool kept = false;
		for (int i = 0; i < n; i++)
			kept |= keep[i] == fd;
		if (!kept)
			fds[nfds++] = fd;
	}
	if (d)
		closedir(d);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

pid_t tap_fork_domain(unsigned domid, struct tap_link *l)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		tap_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		int keep[2] = { -1, -1 };
		if (l) {
			tap_link_child(l);
			keep[0] = l->rd;
			keep[1] = l->wr;
		}
		close_inherited(keep, 2);
		tap_set_domid(domid);
	} else if (l) {
		tap_link_parent(l);
	}
	return pid;
}

void tap_child_exit(void)
{
	fflush(stdout);
	_exit(0);
}

int tap_wait(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			tap_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	}
	return status;
}

void tap_wait_ok(pid_t pid)
{
	int status = tap_wait(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tap_fail(__FILE__, __LINE__, "child %d ended with status %#x", (int)pid, status);
}

void tap_link_init(struct tap_link *l)
{
	int a[2], b[2];
	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
		tap_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	/* parent reads a, writes b; child reads b, writes a */
	l->rd = a[0];
	l->other_wr = a[1];
	l->other_rd = b[0];
	l->wr = b[1];
}

void tap_link_parent(struct tap_link *l)
{
	close(l->other_rd);
	close(l->other_wr);
}

void tap_link_child(struct tap_link *l)
{
	close(l->rd);
	close(l->wr);
	l->rd = l->other_rd;
	l->wr = l->other_wr;
}

void tap_send(struct tap_link *l, uint64_t v)
{
	if (write(l->wr, &v, sizeof(v)) != sizeof(v))
		tap_fail(__FILE__, __LINE__, "tap_send: %s", strerror(errno));
}

uint64_t tap_recv(struct tap_link *l)
{
	uint64_t v;
	struct pollfd pfd = { .fd = l->rd, .events = POLLIN };
	int r;
	do
		r = poll(&pfd, 1, 10000);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		tap_fail(__FILE__, __LINE__, "tap_recv: nothing from the other process in 10 s");
	if (read(l->rd, &v, sizeof(v)) != sizeof(v))
		tap_fail(__FILE__, __LINE__, "tap_recv: the other process is gone");
	return v;
}

void tap_link_close(struct tap_link *l)
{
	close(l->rd);
	close(l->wr);
}

static int start_broker(void)
{
	const char *exe = getenv("GRANTED_BROKER");
	if (!exe) {
		fprintf(stderr, "GRANTED_BROKER is not set\n");
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/granted-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	char sock[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/socket", tmpdir);
	setenv("GRANTED_SOCKET", sock, 1);
	int p[2];
	if (pipe(p) < 0)
		return -1;
	broker_pid = fork();
	if (broker_pid == 0) {
		/* The broker itself runs without the shim the tests preload. */
		unsetenv("LD_PRELOAD");
		close(p[0]);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", p[1]);
		const char *level = getenv("TAP_BROKER_LOG") ? "debug" : "error";
		const char *extra = getenv("TAP_BROKER_ARGS");
		if (extra)
			execl(exe, "granted", "--ready-fd", fd, "--log-level", level, "-o", extra,
			      (char *)NULL);
		else
			execl(exe, "granted", "--ready-fd", fd, "--log-level", level, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char c;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	int ok = poll(&pfd, 1, 10000) == 1 && read(p[0], &c, 1) == 1;
	close(p[0]);
	return ok ? 0 : -1;
}

static void stop_broker(void)
{
	if (broker_pid > 0) {
		kill(broker_pid, SIGTERM);
		int status;
		waitpid(broker_pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			printf("# broker ended with status %#x\n", status);
	}
	if (tmpdir[0])
		rmdir(tmpdir);
}

/* Re-executes this program with the shim preloaded (once). */
static void ensure_preload(char **argv)
{
	const char *shim = getenv("GRANTED_PRELOAD");
	const char *cur = getenv("LD_PRELOAD");
	if (!shim || (cur && strstr(cur, shim)))
		return;
	char buf[PATH_MAX * 2];
	snprintf(buf, sizeof(buf), "%s%s%s", cur && *cur ? cur : "", cur && *cur ? ":" : "", shim);
	setenv("LD_PRELOAD", buf, 1);
	execv("/proc/self/exe", argv);
	perror("re-exec with the shim");
	exit(1);
}

static int run_one(int i)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		alarm(tests[i].timeout);
		int before = tap_count_fds();
		tests[i].fn();
		int after = tap_count_fds();
		if (after != before)
			tap_fail(__FILE__, __LINE__, "fd leak: %d fds before the test, %d after",
				 before, after);
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	/* Whatever the test left running goes with it. */
	kill(-pid, SIGKILL);
	if (WIFSIGNALED(status))
		printf("# killed by signal %d%s\n", WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int tap_main(int argc, char **argv, int flags)
{
	const char *only = argc > 1 ? argv[1] : getenv("TAP_ONLY");
	if (flags & TAP_PRELOAD)
		ensure_preload(argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((flags & TAP_BROKER) && !getenv("TAP_NO_BROKER") && start_broker() < 0) {
		printf("1..0 # cannot start the broker\nnot ok 1 - broker\n");
		return 1;
	}
	int n = 0, failed = 0;
	for (int i = 0; i < ntests; i++)
		if (!only || strcmp(only, tests[i].name) == 0)
			n++;
	printf("1..%d\n", n);
	int k = 0;
	for (int i = 0; i < ntests; i++) {
		if (only && strcmp(only, tests[i].name) != 0)
			continue;
		double t0 = tap_now_ms();
		int ok = run_one(i);
		printf("%s %d - %s # %.0f ms\n", ok ? "ok" : "not ok", ++k, tests[i].name,
		       tap_now_ms() - t0);
		failed += !ok;
		if (broker_pid > 0 && waitpid(broker_pid, NULL, WNOHANG) == broker_pid) {
			printf("# the broker died during %s\n", tests[i].name);
			broker_pid = 0;
			failed++;
			break;
		}
	}
	stop_broker();
	return failed ? 1 : 0;
}
