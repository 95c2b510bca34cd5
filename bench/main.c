/*
 * granted-bench: starts a private broker, runs each figure in a process of
 * its own and prints what it measured beside the primitives.
 */
#include "bench.h"
#include "results.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct bench_opts opt = {
	.cpu_a = 0,
	.cpu_b = 1,
	.cpu_broker = 1,
	.scale = 1.0,
	.kills = 1000,
};

static struct {
	char broker[PATH_MAX];
	char shim[PATH_MAX];
	char dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	pid_t pid;
} broker;

static const struct figure {
	const char *cmd;
	const char *num;
	const char *what;
	int (*fn)(void);
	unsigned timeout_s;
} figures[] = {
	{ "alloc", "1", "gntalloc share cycle", fig_gntalloc, 120 },
	{ "map", "2", "gntdev map cycle", fig_gntdev, 180 },
	{ "evtchn", "3", "event channel notify->wake", fig_evtchn, 120 },
	{ "kill", "4", "SIGKILL to unmap notification", fig_kill, 240 },
	{ "copy", "5", "grant copy", fig_copy, 180 },
	{ "vchan", "6", "vchan stream throughput", fig_vchan, 120 },
};
#define NFIGURES (sizeof(figures) / sizeof(figures[0]))

static void usage(FILE *out)
{
	fprintf(out, "Usage: granted-bench [OPTION]... [all | FIGURE...]\n"
		     "Measures granted against the kernel primitives it is built from.\n\n"
		     "Figures:\n");
	for (size_t i = 0; i < NFIGURES; i++)
		fprintf(out, "  %-8s %s. %s\n", figures[i].cmd, figures[i].num, figures[i].what);
	fprintf(out,
		"  all      every figure (the default)\n\n"
		"  -c, --cpus A,B         process A (the one that times) on CPU A, its peer on\n"
		"                         CPU B (default 0,1)\n"
		"  -b, --broker-cpu N     the broker's CPU, or 'none' (default: B)\n"
		"  -s, --scale X          multiply iteration counts by X (default 1)\n"
		"  -q, --quick            --scale 0.2 --kills 200\n"
		"  -k, --kills N          figure 4: kills per measurement (default 1000)\n"
		"  -j, --json             print JSON instead of the table\n"
		"  -v, --verbose          the broker logs at info level\n"
		"  -h, --help             show this help\n\n"
		"Environment: GRANTED_BROKER, GRANTED_PRELOAD (default: next to this program\n"
		"in the build tree: ../broker/granted, ../shim/libgranted-preload.so).\n");
}

static int parse_cpu(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || v < 0 || v >= CPU_SETSIZE)
		return -1;
	*out = (int)v;
	return (int)(end - s);
}

static int parse_args(int argc, char **argv, bool *want)
{
	static const struct option lo[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "broker-cpu", required_argument, NULL, 'b' },
		{ "scale", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ "kills", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool broker_set = false;
	int c, k;
	while ((c = getopt_long(argc, argv, "c:b:s:qk:jvh", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			k = parse_cpu(optarg, &opt.cpu_a);
			if (k < 0 || optarg[k] != ',' ||
			    parse_cpu(optarg + k + 1, &opt.cpu_b) < 0) {
				fprintf(stderr, "granted-bench: --cpus wants A,B\n");
				return -1;
			}
			break;
		case 'b':
			if (strcmp(optarg, "none") == 0)
				opt.cpu_broker = -1;
			else if (parse_cpu(optarg, &opt.cpu_broker) < 0)
				return -1;
			broker_set = true;
			break;
		case 's':
			opt.scale = atof(optarg);
			if (!(opt.scale > 0 && opt.scale <= 100))
				return -1;
			break;
		case 'q':
			opt.scale = 0.2;
			opt.kills = 200;
			break;
		case 'k':
			opt.kills = (unsigned)atoi(optarg);
			if (opt.kills < 10 || opt.kills > 100000)
				return -1;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (!broker_set)
		opt.cpu_broker = opt.cpu_b;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2 && opt.cpu_b == 1 && opt.cpu_a == 0) {
		opt.cpu_b = 0;
		if (!broker_set)
			opt.cpu_broker = 0;
	}
	int cpus[] = { opt.cpu_a, opt.cpu_b, opt.cpu_broker };
	for (size_t i = 0; i < 3; i++) {
		cpu_set_t set;
		CPU_ZERO(&set);
		if (cpus[i] >= 0 &&
		    (sched_getaffinity(0, sizeof(set), &set) < 0 || !CPU_ISSET(cpus[i], &set))) {
			fprintf(stderr, "granted-bench: CPU %d is not available here\n", cpus[i]);
			return -1;
		}
	}
	bool any = false;
	for (int i = optind; i < argc; i++) {
		bool all = strcmp(argv[i], "all") == 0, found = all;
		for (size_t f = 0; f < NFIGURES; f++) {
			if (all || strcmp(argv[i], figures[f].cmd) == 0 ||
			    strcmp(argv[i], figures[f].num) == 0)
				want[f] = found = true;
		}
		if (!found) {
			fprintf(stderr, "granted-bench: no figure '%s'\n", argv[i]);
			return -1;
		}
		any = true;
	}
	for (size_t f = 0; !any && f < NFIGURES; f++)
		want[f] = true;
	return 0;
}

/*
 * out (PATH_MAX bytes) = getenv(var), or rel from this program's directory:
 * the build tree's layout.
 */
static int locate(char *out, const char *var, const char *rel, int mode)
{
	const char *env = getenv(var);
	char exe[PATH_MAX], tmp[PATH_MAX + 64];
	if (env && *env) {
		snprintf(tmp, sizeof(tmp), "%s", env);
	} else {
		ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (k < 0)
			return -1;
		exe[k] = '\0';
		snprintf(tmp, sizeof(tmp), "%s/%s", dirname(exe), rel);
	}
	if (!realpath(tmp, out) || access(out, mode) < 0) {
		fprintf(stderr, "granted-bench: %s: %s (set %s)\n", tmp, strerror(errno), var);
		return -1;
	}
	return 0;
}

/* Re-executes this program with the shim preloaded (once). */
static void ensure_preload(char **argv)
{
	const char *cur = getenv("LD_PRELOAD");
	if (cur && strstr(cur, broker.shim))
		return;
	char buf[PATH_MAX * 2 + 2];
	snprintf(buf, sizeof(buf), "%s%s%s", cur && *cur ? cur : "", cur && *cur ? ":" : "",
		 broker.shim);
	setenv("LD_PRELOAD", buf, 1);
	execv("/proc/self/exe", argv);
	perror("granted-bench: re-exec with the shim");
	exit(1);
}

static int start_broker(void)
{
	snprintf(broker.dir, sizeof(broker.dir), "/tmp/granted-bench-XXXXXX");
	if (!broker.dir[0] || !mkdtemp(broker.dir)) {
		broker.dir[0] = '\0';
		return -1;
	}
	snprintf(broker.sock, sizeof(broker.sock), "%s/socket", broker.dir);
	setenv("GRANTED_SOCKET", broker.sock, 1);
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	broker.pid = fork();
	if (broker.pid == 0) {
		close(p[0]);
		/* The broker runs as installed: no shim in it. */
		unsetenv("LD_PRELOAD");
		pin_self(opt.cpu_broker);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", p[1]);
		execl(broker.broker, "granted", "--ready-fd", fd, "--log-level",
		      opt.verbose ? "info" : "error", "-o", "gntalloc-limit=65536", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char c;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	int ok = broker.pid > 0 && poll(&pfd, 1, 10000) == 1 && read(p[0], &c, 1) == 1;
	close(p[0]);
	if (!ok)
		fprintf(stderr, "granted-bench: the broker %s did not start\n", broker.broker);
	return ok ? 0 : -1;
}

static void stop_broker(void)
{
	if (broker.pid > 0) {
		kill(broker.pid, SIGTERM);
		int status;
		waitpid(broker.pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "granted-bench: the broker ended with status %#x\n",
				status);
		broker.pid = 0;
	}
	unlink(broker.sock);
	if (broker.dir[0])
		rmdir(broker.dir);
}

static void cpu_model(char *out, size_t len)
{
	snprintf(out, len, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, len, "%s", colon + 2);
			break;
		}
	}
	if (f)
		fclose(f);
}

static void header(char *json, size_t len)
{
	struct utsname u;
	char model[128], when[64], bcpu[16];
	time_t t = time(NULL);
	uname(&u);
	cpu_model(model, sizeof(model));
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (opt.cpu_broker < 0)
		snprintf(bcpu, sizeof(bcpu), "not pinned");
	else
		snprintf(bcpu, sizeof(bcpu), "CPU %d", opt.cpu_broker);
	snprintf(json, len,
		 "\"version\": \"%s\", \"kernel\": \"%s %s\", \"cpu\": \"%s\", \"cpus\": %ld, "
		 "\"date\": \"%s\", \"cpu_a\": %d, \"cpu_b\": %d, \"cpu_broker\": %d, "
		 "\"scale\": %.2f, \"kills\": %u",
		 GRANTED_VERSION, u.sysname, u.release, model, ncpu, when, opt.cpu_a, opt.cpu_b,
		 opt.cpu_broker, opt.scale, opt.kills);
	if (opt.json)
		return;
	printf("granted-bench %s  %s  %s %s %s, %s, %ld CPUs online\n", GRANTED_VERSION, when,
	       u.sysname, u.release, u.machine, model, ncpu);
	printf("placement: process A (the one that times: mapper, pinger, watcher) on CPU %d;\n"
	       "           process B (its peer: granter, ponger, the killed one) on CPU %d;\n"
	       "           the broker, and the fd server that stands in for it in the "
	       "primitives: %s.\n",
	       opt.cpu_a, opt.cpu_b, bcpu);
	printf("broker %s (no shim), shim %s\n", broker.broker, broker.shim);
	printf("timing: CLOCK_MONOTONIC around each operation (or a batch, for sub-us ones); "
	       "medians and p99 of\n        all samples after a warm-up; our figure and its "
	       "primitives interleaved in rounds.\n        ratio = ours / primitive (time: "
	       "lower is better). Primitives call the kernel directly.\n\n");
	results_print_header();
}

/* Time the hypervisor took from all CPUs (steal), in ms, or -1. */
static long steal_ms(void)
{
	FILE *f = fopen("/proc/stat", "re");
	unsigned long long v[8] = { 0 };
	int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7])
		  : 0;
	if (f)
		fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	return n == 8 && hz > 0 ? (long)(v[7] * 1000 / (unsigned long long)hz) : -1;
}

static int run_figure(const struct figure *f)
{
	unsigned first = results_count();
	long steal0 = steal_ms();
	uint64_t t0 = now_ns();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(f->timeout_s);
		pin_self(opt.cpu_a);
		int r = f->fn();
		fflush(stdout);
		_exit(r == 0 ? 0 : 1);
	}
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok) {
		char why[96];
		int sig = pid > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		if (sig)
			snprintf(why, sizeof(why), "killed by signal %d (%s)", sig,
				 sig == SIGALRM ? "timeout" : strsignal(sig));
		else
			snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
		result_verdict(f->num, V_FAIL, "figure %s (%s) did not complete: %s", f->num,
			       f->what, why);
	}
	/* More than 1% of the time stolen by the hypervisor shows in the tails. */
	long steal = steal_ms() - steal0;
	double secs = (double)(now_ns() - t0) / 1e9;
	if (steal0 >= 0 && steal > 10 * secs)
		result_note(f->num,
			    "the hypervisor stole %ld ms of CPU time during this figure "
			    "(%.1f s): expect noise",
			    steal, secs);
	if (broker.pid > 0 && waitpid(broker.pid, &status, WNOHANG) == broker.pid) {
		result_verdict(f->num, V_FAIL, "the broker died during figure %s: status %#x",
			       f->num, status);
		broker.pid = 0;
		ok = 0;
		stop_broker();
		if (start_broker() < 0)
			ok = -1;
	}
	if (!opt.json)
		results_print_from(first);
	return ok < 0 ? -1 : ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	bool want[NFIGURES] = { 0 };
	if (parse_args(argc, argv, want) < 0) {
		usage(stderr);
		return 2;
	}
	if (locate(broker.shim, "GRANTED_PRELOAD", "../shim/libgranted-preload.so", R_OK) < 0 ||
	    locate(broker.broker, "GRANTED_BROKER", "../broker/granted", X_OK) < 0)
		return 2;
	ensure_preload(argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (results_init() < 0 || start_broker() < 0) {
		stop_broker();
		return 1;
	}
	char json[1024];
	header(json, sizeof(json));
	int failed = 0;
	for (size_t f = 0; f < NFIGURES; f++) {
		int r = want[f] ? run_figure(&figures[f]) : 0;
		failed += r != 0;
		if (r < 0)
			break;
	}
	stop_broker();
	if (opt.json)
		results_print_json(json);
	return failed ? 1 : 0;
}
