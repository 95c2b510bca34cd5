/*
 * The result lines: figure processes append them to memory shared with the
 * main process, which prints them (a table, or JSON at the end).
 */
#include "bench.h"
#include "results.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_LINES 128

struct store {
	unsigned n;
	struct result_line lines[MAX_LINES];
};
static struct store *store;

int results_init(void)
{
	store = mmap(NULL, sizeof(*store), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	if (store == MAP_FAILED) {
		store = NULL;
		return -1;
	}
	return 0;
}

unsigned results_count(void)
{
	return store ? store->n : 0;
}

static struct result_line *line_new(enum line_kind kind, const char *fig)
{
	if (!store || store->n == MAX_LINES)
		return NULL;
	struct result_line *l = &store->lines[store->n];
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	snprintf(l->fig, sizeof(l->fig), "%s", fig);
	/* Published once filled in: main reads only after the figure ends. */
	store->n++;
	return l;
}

static void op_status(char *buf, size_t len, const struct bench_op *op)
{
	if (op->err)
		snprintf(buf, len, "error: %s", strerror(-op->err));
	else
		snprintf(buf, len, "no samples");
}

/* Sorts the op's samples in place, which changes nothing that matters. */
static struct stat_sum op_summary(const struct bench_op *op)
{
	struct samples s = op->s;
	return summarize(&s);
}

double median_of(const struct bench_op *op)
{
	return op->s.n && !op->err ? op_summary(op).median : 0;
}

struct result_line *result_row(const char *fig, const char *name, const struct bench_op *ours)
{
	struct result_line *l = line_new(LINE_ROW, fig);
	if (!l)
		return NULL;
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (ours) {
		if (ours->err || !ours->s.n)
			op_status(l->status, sizeof(l->status), ours);
		else
			l->ours = op_summary(ours);
	}
	return l;
}

void result_prim(struct result_line *row, const char *name, const struct bench_op *prim)
{
	if (!row || row->nprims == MAX_PRIMS)
		return;
	unsigned i = row->nprims++;
	snprintf(row->prim[i].name, sizeof(row->prim[i].name), "%s", name);
	if (prim->err || !prim->s.n)
		op_status(row->prim[i].status, sizeof(row->prim[i].status), prim);
	else
		row->prim[i].s = op_summary(prim);
}

void result_prim_value(struct result_line *row, const char *name, struct stat_sum s)
{
	if (!row || row->nprims == MAX_PRIMS)
		return;
	unsigned i = row->nprims++;
	snprintf(row->prim[i].name, sizeof(row->prim[i].name), "%s", name);
	row->prim[i].s = s;
	if (!s.n)
		snprintf(row->prim[i].status, sizeof(row->prim[i].status), "no value");
}

void result_verdict(const char *fig, enum verdict v, const char *fmt, ...)
{
	struct result_line *l = line_new(LINE_VERDICT, fig);
	if (!l)
		return;
	l->verdict = v;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
}

void result_note(const char *fig, const char *fmt, ...)
{
	struct result_line *l = line_new(LINE_NOTE, fig);
	if (!l)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
}

const char *fmt_time(char *buf, size_t len, double ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 100000)
		snprintf(buf, len, "%.2f us", ns / 1000);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", ns / 1000);
	else
		snprintf(buf, len, "%.2f ms", ns / 1000000);
	return buf;
}

/* ---- the table ------------------------------------------------------------ */

#define W_NAME 48
#define W_TIME 9
#define W_PRIM 48

void results_print_header(void)
{
	printf("%-3s %-*s %*s %*s   %-*s %*s %*s %7s\n", "", W_NAME, "figure", W_TIME, "median",
	       W_TIME, "p99", W_PRIM, "primitive (same placement)", W_TIME, "median", W_TIME, "p99",
	       "ratio");
	for (int i = 0; i < 3 + 1 + W_NAME + 2 * (W_TIME + 1) + 3 + W_PRIM + 2 * (W_TIME + 1) + 8;
	     i++)
		putchar('-');
	putchar('\n');
}

static void print_value(const struct stat_sum *s, const char *status, int width_both)
{
	char a[32], b[32];
	if (!s->n) {
		/* the whole reason is in the JSON */
		printf("%-*.*s", width_both, width_both, status);
		return;
	}
	fmt_time(a, sizeof(a), s->median);
	if (s->derived)
		snprintf(b, sizeof(b), "-");
	else
		fmt_time(b, sizeof(b), s->p99);
	printf("%*s %*s", W_TIME, a, W_TIME, b);
}

static void print_row(const struct result_line *l)
{
	printf("%-3s %-*s ", l->fig, W_NAME, l->name);
	print_value(&l->ours, l->status, 2 * W_TIME + 1);
	if (!l->nprims) {
		printf("\n");
		return;
	}
	for (unsigned i = 0; i < l->nprims; i++) {
		if (i)
			printf("%-3s %-*s %*s", "", W_NAME, "", 2 * W_TIME + 1, "");
		printf("   %-*s ", W_PRIM, l->prim[i].name);
		print_value(&l->prim[i].s, l->prim[i].status, 2 * W_TIME + 1);
		if (l->ours.n && l->prim[i].s.n)
			printf(" %6.2fx", l->ours.median / l->prim[i].s.median);
		printf("\n");
	}
}

void results_print_from(unsigned first)
{
	static const char *vtxt[] = { "FAIL", "PASS", "n/a " };
	for (unsigned i = first; store && i < store->n; i++) {
		const struct result_line *l = &store->lines[i];
		switch (l->kind) {
		case LINE_ROW:
			print_row(l);
			break;
		case LINE_VERDICT:
			printf("%-3s   [%s] %s\n", l->fig, vtxt[l->verdict], l->text);
			break;
		case LINE_NOTE:
			printf("%-3s   note: %s\n", l->fig, l->text);
			break;
		}
	}
	fflush(stdout);
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void json_stat(const struct stat_sum *s, const char *status)
{
	if (!s->n) {
		printf("{\"available\": false, \"status\": ");
		json_str(status);
		printf("}");
		return;
	}
	printf("{\"median_ns\": %.1f", s->median);
	if (!s->derived)
		printf(", \"p99_ns\": %.1f, \"min_ns\": %.1f, \"samples\": %u", s->p99, s->min,
		       s->n);
	printf("}");
}

void results_print_json(const char *header_json)
{
	static const char *vtxt[] = { "FAIL", "PASS", "n/a" };
	printf("{%s,\n \"rows\": [", header_json);
	const char *sep = "\n";
	for (unsigned i = 0; store && i < store->n; i++) {
		const struct result_line *l = &store->lines[i];
		if (l->kind != LINE_ROW)
			continue;
		printf("%s  {\"figure\": ", sep);
		json_str(l->fig);
		printf(", \"name\": ");
		json_str(l->name);
		printf(", \"ours\": ");
		json_stat(&l->ours, l->status);
		printf(", \"primitives\": [");
		for (unsigned k = 0; k < l->nprims; k++) {
			printf("%s{\"name\": ", k ? ", " : "");
			json_str(l->prim[k].name);
			printf(", \"value\": ");
			json_stat(&l->prim[k].s, l->prim[k].status);
			if (l->ours.n && l->prim[k].s.n)
				printf(", \"ratio\": %.3f", l->ours.median / l->prim[k].s.median);
			printf("}");
		}
		printf("]}");
		sep = ",\n";
	}
	printf("\n ],\n \"verdicts\": [");
	sep = "\n";
	for (unsigned i = 0; store && i < store->n; i++) {
		const struct result_line *l = &store->lines[i];
		if (l->kind == LINE_ROW)
			continue;
		printf("%s  {\"figure\": ", sep);
		json_str(l->fig);
		printf(", \"result\": ");
		json_str(l->kind == LINE_NOTE ? "note" : vtxt[l->verdict]);
		printf(", \"text\": ");
		json_str(l->text);
		printf("}");
		sep = ",\n";
	}
	printf("\n ]}\n");
}
