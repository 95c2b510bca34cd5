/*
 * The broker's policy with real users: a process of another user may act
 * only as the domains a policy file gives it (EACCES at open otherwise, and
 * the refusal is logged), and may use grantctl's tables only if allowed.
 * Needs root (to become `nobody`), which CI is.
 */
#include "../conformance/kabi.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct private_broker {
	char dir[64], sock[128], log[128];
	pid_t pid;
};

/* A broker of our own, on a socket other users can reach. */
static void start(struct private_broker *pb, const char *policy_text)
{
	snprintf(pb->dir, sizeof(pb->dir), "/tmp/granted-policy-XXXXXX");
	CHECK(mkdtemp(pb->dir));
	chmod(pb->dir, 0755);
	snprintf(pb->sock, sizeof(pb->sock), "%s/socket", pb->dir);
	snprintf(pb->log, sizeof(pb->log), "%s/log", pb->dir);
	char policy[128];
	snprintf(policy, sizeof(policy), "%s/policy", pb->dir);
	FILE *fp = fopen(policy, "w");
	fputs(policy_text, fp);
	fclose(fp);
	int p[2];
	CHECK_OK(pipe(p));
	pb->pid = fork();
	if (pb->pid == 0) {
		unsetenv("LD_PRELOAD");
		int log = open(pb->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(log, 2);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", p[1]);
		execl(getenv("GRANTED_BROKER"), "granted", "--socket", pb->sock, "--policy", policy,
		      "--ready-fd", fd, "--log-level", "warning", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char c;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	CHECK(poll(&pfd, 1, 10000) == 1 && read(p[0], &c, 1) == 1);
	close(p[0]);
	setenv("GRANTED_SOCKET", pb->sock, 1);
}

static void stop(struct private_broker *pb)
{
	kill(pb->pid, SIGTERM);
	tap_wait(pb->pid);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pb->dir);
	CHECK_EQ(system(cmd), 0);
}

static void become_nobody(void)
{
	struct passwd *pw = getpwnam("nobody");
	CHECK(pw);
	CHECK_OK(setgroups(0, NULL));
	CHECK_OK(setgid(pw->pw_gid));
	CHECK_OK(setuid(pw->pw_uid));
}

static int open_as(const char *path, unsigned domid)
{
	tap_set_domid(domid);
	return open(path, O_RDWR | O_CLOEXEC);
}

TEST(other_users_get_only_their_domains)
{
	if (geteuid() != 0)
		tap_fail(__FILE__, __LINE__, "this test needs root, to become nobody");
	struct private_broker pb;
	start(&pb, "# nobody may be domains 5 and 8-9\nuser nobody domains 5,8-9\n");
	pid_t pid = fork();
	if (pid == 0) {
		become_nobody();
		int fd = open_as("/dev/xen/gntalloc", 5);
		CHECK(fd >= 0);
		uint64_t idx;
		uint32_t ref;
		CHECK_OK(ga_alloc(fd, 9, 1, 1, &idx, &ref));
		close(fd);
		fd = open_as("/dev/xen/evtchn", 9);
		CHECK(fd >= 0);
		close(fd);
		CHECK_ERR(open_as("/dev/xen/gntdev", 6), EACCES);
		CHECK_ERR(open_as("/dev/xen/evtchn", 0), EACCES);
		CHECK_ERR(open_as("/dev/xen/gntalloc", 7), EACCES);
		_exit(0);
	}
	tap_wait_ok(pid);
	/* The broker's own user keeps every right. */
	int fd = open_as("/dev/xen/gntdev", 6);
	CHECK(fd >= 0);
	close(fd);
	/* Each refusal is logged. */
	stop(&pb);
}

TEST(admin_rights_follow_the_policy)
{
	if (geteuid() != 0)
		tap_fail(__FILE__, __LINE__, "this test needs root, to become nobody");
	const char *grantctl = getenv("GRANTED_GRANTCTL");
	CHECK(grantctl);
	for (int allowed = 0; allowed < 2; allowed++) {
		struct private_broker pb;
		start(&pb, allowed ? "user nobody admin\n" : "user nobody domains 1\n");
		pid_t pid = fork();
		if (pid == 0) {
			become_nobody();
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			dup2(null, 2);
			unsetenv("LD_PRELOAD");
			execl(grantctl, "grantctl", "domains", (char *)NULL);
			_exit(127);
		}
		int st = tap_wait(pid);
		CHECK(WIFEXITED(st));
		CHECK_EQ(WEXITSTATUS(st), allowed ? 0 : 1);
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "grep -q 'may not use admin commands' %s", pb.log);
		CHECK_EQ(system(cmd) == 0, !allowed);
		stop(&pb);
	}
}

TEST(refusals_are_logged)
{
	struct private_broker pb;
	start(&pb, "user nobody domains 5\n");
	pid_t pid = fork();
	if (pid == 0) {
		become_nobody();
		CHECK_ERR(open_as("/dev/xen/gntdev", 3), EACCES);
		_exit(0);
	}
	tap_wait_ok(pid);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "grep -q 'may not act as domain 3' %s", pb.log);
	CHECK_EQ(system(cmd), 0);
	stop(&pb);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD);
}
