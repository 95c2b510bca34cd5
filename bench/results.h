/*
 * What main does with the result lines the figures leave behind.
 */
#ifndef GRANTED_BENCH_RESULTS_H
#define GRANTED_BENCH_RESULTS_H

/* The shared store: before any figure process is forked. */
int results_init(void);
unsigned results_count(void);
void results_print_header(void);
/* Prints the lines from index first on. */
void results_print_from(unsigned first);
/* One JSON object: header_json is its first members, without braces. */
void results_print_json(const char *header_json);

#endif
