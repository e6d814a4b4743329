/* progress.c: the stderr progress line of synth and quantize (progress.h). */
#include "cli/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(struct progress *p, const char *label)
{
    p->label = label;
    p->tty = isatty(STDERR_FILENO) == 1;
    p->t0 = now_s();
    p->last_step = -1;
    p->drawn = false;
}

double progress_elapsed(const struct progress *p) { return now_s() - p->t0; }

void progress_update(void *arg, uint64_t done, uint64_t total)
{
    struct progress *p = arg;
    double frac = total ? (double)done / (double)total : 1.0;
    double el = now_s() - p->t0;
    double eta = frac > 0 ? el / frac - el : 0;
    if (p->tty) {
        int step = (int)(frac * 1000);
        if (step == p->last_step)
            return;
        p->last_step = step;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %5.1f%%  %.0fs elapsed, ~%.0fs left ", p->label, bar, 100 * frac, el, eta);
        p->drawn = true;
    } else {
        int step = (int)(frac * 10);
        if (step == p->last_step || (el < 2.0 && done < total))
            return; /* short runs print only their end */
        p->last_step = step;
        fprintf(stderr, "%s: %3d%% (%.0fs elapsed)\n", p->label, step * 10, el);
    }
    fflush(stderr);
}

void progress_end(struct progress *p)
{
    if (p->tty && p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}

void progress_note(void *arg, const char *msg)
{
    struct progress *p = arg;
    if (p->tty && p->drawn) {
        fputc('\n', stderr);
        p->drawn = false;
        p->last_step = -1;
    }
    fprintf(stderr, "note: %s\n", msg);
}
