/* The peer test's criterion; see peer_criterion.h. */
#include "peer_criterion.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cpu_reference.h"

const struct peer_limits peer_limits_default = {1.05, 0.01, 2e-2, 12.0};

int peer_argmax(const float *row, int vocab)
{
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

int peer_near_tie(const float *fp32, const float *bf16, int vocab, double tie_factor)
{
    double top1 = -INFINITY, top2 = -INFINITY, sq = 0;
    for (int i = 0; i < vocab; i++) {
        double z = fp32[i], d = (double)bf16[i] - z;
        sq += d * d;
        if (z > top1) top2 = top1, top1 = z;
        else if (z > top2) top2 = z;
    }
    return top1 - top2 <= tie_factor * sqrt(sq / vocab);
}

void peer_measure_prefill(const float *ours, const float *theirs, const float *fp32, int rows, int vocab,
                          double tie_factor, struct peer_prefill *out)
{
    size_t n = (size_t)rows * vocab;
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->ours_error = ref_rel_error(ours, fp32, n);
    out->theirs_error = ref_rel_error(theirs, fp32, n);
    out->direct_error = ref_rel_error(ours, theirs, n);
    int ours_same = 0, theirs_same = 0;
    for (int r = 0; r < rows; r++) {
        size_t o = (size_t)r * vocab;
        int truth = peer_argmax(fp32 + o, vocab);
        ours_same += peer_argmax(ours + o, vocab) == truth;
        theirs_same += peer_argmax(theirs + o, vocab) == truth;
        out->near_ties += peer_near_tie(fp32 + o, theirs + o, vocab, tie_factor);
    }
    out->ours_agreement = rows ? (double)ours_same / rows : 0;
    out->theirs_agreement = rows ? (double)theirs_same / rows : 0;
}

/* Append one "; "-separated reason to why. */
__attribute__((format(printf, 3, 4))) static void say(char *why, int why_len, const char *fmt, ...)
{
    size_t used = strlen(why);
    if (used && (int)used < why_len - 2) strcpy(why + used, "; "), used += 2;
    if ((int)used >= why_len - 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + used, why_len - used, fmt, ap);
    va_end(ap);
}

int peer_judge_prefill(const struct peer_prefill *p, const struct peer_limits *l, char *why, int why_len)
{
    why[0] = 0;
    /* each bar negated, so that a NaN fails it (ref_rel_error gives +inf for non-finite logits) */
    if (!(p->ours_error <= l->error_ratio * p->theirs_error))
        say(why, why_len, "rel error vs fp32 %.4g > %.3g x transformers' %.4g", p->ours_error, l->error_ratio,
            p->theirs_error);
    if (!(p->ours_agreement >= p->theirs_agreement - l->agreement_slack))
        say(why, why_len, "greedy agreement with fp32 %.4f < transformers' %.4f - %.3g", p->ours_agreement,
            p->theirs_agreement, l->agreement_slack);
    if (!(p->direct_error <= l->direct_error))
        say(why, why_len, "rel error vs transformers' bf16 logits %.4g > %.3g", p->direct_error, l->direct_error);
    return why[0] != 0;
}

/* Both decode measures: with free_running, a sequence ends at its first differing token. */
static void measure_decode(const int *ours, const int *fp32, const unsigned char *tie, int seqs, int steps,
                           int free_running, struct peer_decode *d)
{
    memset(d, 0, sizeof *d);
    d->positions = seqs * steps;
    d->first_seq = d->first_step = -1;
    for (int i = 0; i < seqs * steps; i++) d->near_ties += tie[i] != 0;
    for (int b = 0; b < seqs; b++)
        for (int t = 0; t < steps; t++) {
            int i = b * steps + t, same = ours[i] == fp32[i];
            if (!tie[i]) {
                d->compared++;
                if (!same && !d->mismatches++) d->first_seq = b, d->first_step = t;
            }
            if (!same && free_running) break;
        }
}

void peer_measure_forced(const int *ours, const int *fp32, const unsigned char *tie, int seqs, int steps,
                         struct peer_decode *out)
{
    measure_decode(ours, fp32, tie, seqs, steps, 0, out);
}

void peer_measure_generated(const int *ours, const int *fp32, const unsigned char *tie, int seqs, int steps,
                            struct peer_decode *out)
{
    measure_decode(ours, fp32, tie, seqs, steps, 1, out);
}

int peer_judge_decode(const struct peer_decode *d, char *why, int why_len)
{
    why[0] = 0;
    if (d->mismatches)
        snprintf(why, why_len, "%d of %d tokens outside near-ties differ from fp32's (first: sequence %d, step %d)",
                 d->mismatches, d->compared, d->first_seq, d->first_step);
    return d->mismatches != 0;
}
