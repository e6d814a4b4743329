/* progress.h: a progress line on stderr for long conversions (synth,
 * quantize). On a terminal it is one line redrawn in place; otherwise (a
 * log file, a pipe) a plain line is printed every 10% so logs stay short. */
#ifndef CITADEL_CLI_PROGRESS_H
#define CITADEL_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
    const char *label;
    bool tty;
    double t0;
    int last_step; /* last printed tenth (non-tty) or per-mille (tty) */
    bool drawn;
};

void progress_init(struct progress *p, const char *label);
/* Matches cit_progress_fn: arg is the struct progress. */
void progress_update(void *arg, uint64_t done, uint64_t total);
/* Ends the line (tty) so that later output starts on a fresh one. */
void progress_end(struct progress *p);
/* Prints a notice without garbling the progress line; matches cit_note_fn. */
void progress_note(void *arg, const char *msg);
/* Seconds since progress_init. */
double progress_elapsed(const struct progress *p);

#endif
