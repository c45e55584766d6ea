/* The verdict of the peer test (test_peer_transformers.cu): our bf16 forward
 * and transformers' bf16 forward of the same weights, both measured against the
 * fp32 forward of those weights, which is the truth two bf16 forwards of a random
 * model only approximate. Pure C on logits in memory, so the criterion itself is
 * tested on the CPU (tests/test_peer_criterion.c).
 *
 * Near-tie (a position where no bf16 forward can be expected to pick fp32's
 * token): the fp32 logits' two largest values differ by at most tie_factor times
 * the position's bf16 noise, the root-mean-square over the vocabulary of
 * transformers' bf16 logits minus the fp32 logits at that position. The gap
 * between the two tokens moves by more than the noise itself (the largest logits
 * carry the largest rounding): measured on the CPU with transformers' bf16 forward
 * and a second bf16 forward with other rounding points, on 16384 prefill positions
 * of eight models of the test's shapes and init stds (seeds 2 and 3, not the
 * test's), the error of the top-2 gap exceeded 4x the noise at 5% of positions,
 * 8x at 0.07%, 10x at 0.006% and 12x never. At 12x (the default) a wrong token
 * outside a near-tie is an arithmetic error, not rounding; about a fifth of the
 * positions are near-ties at init std 0.02, few at 0.006.
 *
 * The error bar, and what issue 25 found: references written before its fix judged
 * against an fp32 forward whose rope frequencies were rounded to bf16 (the script
 * cast its model with .to(bfloat16), which casts the inv_freq buffer, and the fp32
 * copy inherited them). transformers' bf16 forward shared those wrong frequencies,
 * ours rotates by config.json's; on the llama3 shape at init std 0.02, where
 * attention is peaked enough for the angles to matter, that explains the H200's
 * 1.069x and 1.075x (not re-run there yet). On the CPU, with a torch emulation of
 * our kernels' rounding points (seeds 0 and 1): 0.997x and 1.004x of transformers'
 * bf16 error against the old truth, 0.928x and 0.930x against the fixed one; our
 * rounding points with the frequencies rounded to bf16 give 0.930x against the old
 * truth and 1.003x against the fixed one, so the frequencies alone make the
 * difference. The tie calibration above and the second forward's greedy agreement
 * (within 0.4 point of transformers' on every case; every fp32 decode token
 * outside near-ties matched) were measured against the old truth. */
#ifndef PB_PEER_CRITERION_H
#define PB_PEER_CRITERION_H

#ifdef __cplusplus
extern "C" {
#endif

struct peer_limits {
    double error_ratio;      /* our rel error vs fp32 <= this x transformers' bf16 rel error vs fp32 */
    double agreement_slack;  /* our greedy agreement with fp32 >= transformers' minus this */
    double direct_error;     /* our logits vs transformers' bf16 logits: rel error <= this */
    double tie_factor;       /* near-tie: fp32 top-2 gap <= this x the position's bf16 noise */
};
extern const struct peer_limits peer_limits_default;  /* 1.05, 0.01, 2e-2, 12 */

/* Index of the largest value (the first of equal ones, as torch.argmax). */
int peer_argmax(const float *row, int vocab);
/* 1 when the position is a near-tie (above), from its fp32 and transformers' bf16 logits. */
int peer_near_tie(const float *fp32, const float *bf16, int vocab, double tie_factor);

/* A prefill: every position's logits, [rows, vocab] each. Agreement counts
 * every position, near-ties included: both forwards are judged alike. */
struct peer_prefill {
    int rows;
    double ours_error, theirs_error;        /* rel error against fp32: ||x - fp32|| / ||fp32|| */
    double direct_error;                    /* ours against transformers' bf16 */
    double ours_agreement, theirs_agreement;  /* fraction of rows whose argmax is fp32's */
    int near_ties;                          /* reported, not judged */
};
void peer_measure_prefill(const float *ours, const float *theirs, const float *fp32, int rows, int vocab,
                          double tie_factor, struct peer_prefill *out);
/* 0 when every bar holds; else 1, with each bar missed and its numbers in why. */
int peer_judge_prefill(const struct peer_prefill *p, const struct peer_limits *l, char *why, int why_len);

/* A decode of `seqs` sequences, `steps` tokens each ([seqs, steps] arrays):
 * fp32 tokens and their near-tie flags from the reference, ours from our decode. */
struct peer_decode {
    int positions;    /* seqs x steps */
    int near_ties;    /* positions that are near-ties */
    int compared;     /* positions whose tokens were compared */
    int mismatches;   /* of those, tokens that differ from fp32's: the verdict wants none */
    int first_seq, first_step;  /* the first mismatch, -1 if none */
};
/* Teacher-forced: each step was fed the fp32 run's previous token, so every
 * position outside a near-tie is compared. */
void peer_measure_forced(const int *ours, const int *fp32, const unsigned char *tie, int seqs, int steps,
                         struct peer_decode *out);
/* Free running (our own tokens fed back): a sequence is compared up to its first
 * differing token; differing there is allowed only at a near-tie, and after it the
 * contexts differ, so the rest of that sequence is not compared. */
void peer_measure_generated(const int *ours, const int *fp32, const unsigned char *tie, int seqs, int steps,
                            struct peer_decode *out);
int peer_judge_decode(const struct peer_decode *d, char *why, int why_len);

#ifdef __cplusplus
}
#endif
#endif
