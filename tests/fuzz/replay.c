/*
 * The plain build of a fuzz target: runs each file named on the command
 * line, and each file of each directory named, through the target, in name
 * order, each in a child process of its own (LLVMFuzzerInitialize there
 * too), and reports one TAP line per file: a failing input (the target's
 * checks abort, or a sanitizer in the ASan build) does not hide the others.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

struct list {
	char **paths;
	size_t n, cap;
};

static void add(struct list *l, const char *dir, const char *name)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->paths = realloc(l->paths, l->cap * sizeof(*l->paths));
		FZ_CHECK(l->paths != NULL);
	}
	size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
	char *p = malloc(len);
	FZ_CHECK(p != NULL);
	snprintf(p, len, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
	l->paths[l->n++] = p;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_arg(struct list *l, const char *arg)
{
	struct stat st;
	if (stat(arg, &st) < 0)
		fz_fail(__FILE__, __LINE__, "%s: not found", arg);
	if (!S_ISDIR(st.st_mode)) {
		add(l, NULL, arg);
		return;
	}
	DIR *d = opendir(arg);
	FZ_CHECK(d != NULL);
	size_t first = l->n;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] != '.')
			add(l, arg, de->d_name);
	}
	closedir(d);
	qsort(l->paths + first, l->n - first, sizeof(*l->paths), by_name);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fz_fail(__FILE__, __LINE__, "%s: cannot open", path);
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	FZ_CHECK(buf != NULL);
	for (;;) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
		FZ_CHECK(buf != NULL);
	}
	FZ_CHECK(!ferror(f));
	fclose(f);
	*len = n;
	return buf;
}

/* Runs one input in this (child) process; does not return. */
static void run_one(const char *path, int *argc, char ***argv)
{
	size_t len;
	unsigned char *data = slurp(path, &len);
	alarm(120);
	LLVMFuzzerInitialize(argc, argv);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	exit(0);
}

int main(int argc, char **argv)
{
	struct list l = { 0 };
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR-OR-FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		add_arg(&l, argv[i]);
	printf("1..%zu\n", l.n);
	for (size_t i = 0; i < l.n; i++) {
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		FZ_CHECK(pid >= 0);
		if (pid == 0)
			run_one(l.paths[i], &argc, &argv);
		int status;
		FZ_CHECK(waitpid(pid, &status, 0) == pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok %zu - %s\n", i + 1, l.paths[i]);
		} else {
			if (WIFSIGNALED(status))
				printf("not ok %zu - %s (signal %d)\n", i + 1, l.paths[i],
				       WTERMSIG(status));
			else
				printf("not ok %zu - %s (exit %d)\n", i + 1, l.paths[i],
				       WEXITSTATUS(status));
		}
		free(l.paths[i]);
	}
	free(l.paths);
	return 0; /* the "not ok" lines say what failed */
}
