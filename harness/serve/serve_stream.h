/* The request stream: arrival times and prompt / output lengths, made once per
 * offered rate from the seed and shared by every strategy, so placements are
 * compared on the very same requests. */
#ifndef PB_SERVE_STREAM_H
#define PB_SERVE_STREAM_H
#include <stdint.h>
#include "serve_options.h"

struct serve_request {
    int id;
    double arrival_ms;
    int prompt_tokens;
    int output_tokens;
};

/* Request i's lengths come from one seeded stream independent of the rate, and its
 * arrival from another: gaps are exponential with mean 1/rate (Poisson arrivals),
 * request 0 arrives at 0, and at rate INFINITY all arrive at 0. The same uniforms
 * are scaled by 1/rate at every rate, so a sweep varies only the pace. */
void serve_stream_make(const struct serve_options *s, double rate, uint64_t seed, struct serve_request *out,
                       int n);
/* Request `id`'s prompt, len token ids below vocab: a stream of its own from the
 * seed, so a request has the same prompt at every rate and for every strategy. */
void serve_prompt_tokens(uint64_t seed, int id, int len, int vocab, int *out);
/* Length of request i under spec, drawing from *rng for uniform:A-B. */
int length_spec_draw(const struct length_spec *spec, int i, uint64_t *rng);
/* splitmix64 step and a uniform in [0, 1) from it. */
uint64_t serve_rng_next(uint64_t *state);
double serve_rng_uniform(uint64_t *state);
#endif
