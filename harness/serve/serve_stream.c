#include "serve_stream.h"
#include <math.h>

/* Distinct streams from one --seed, so lengths do not shift when the rate does. */
#define ARRIVAL_STREAM 0x61727269766c0001ull
#define PROMPT_STREAM 0x70726f6d70740002ull
#define OUTPUT_STREAM 0x6f75747075740003ull
#define TOKEN_STREAM 0x746f6b656e730004ull

uint64_t serve_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double serve_rng_uniform(uint64_t *state)
{
    return (double)(serve_rng_next(state) >> 11) * 0x1.0p-53;
}

int length_spec_draw(const struct length_spec *spec, int i, uint64_t *rng)
{
    switch (spec->kind) {
    case LENGTH_UNIFORM: return spec->lo + (int)(serve_rng_uniform(rng) * (spec->hi - spec->lo + 1));
    case LENGTH_FILE: return spec->values[i];
    default: return spec->fixed;
    }
}

void serve_stream_make(const struct serve_options *s, double rate, uint64_t seed, struct serve_request *out,
                       int n)
{
    uint64_t arrivals = seed ^ ARRIVAL_STREAM, prompts = seed ^ PROMPT_STREAM, outputs = seed ^ OUTPUT_STREAM;
    double t = 0;
    for (int i = 0; i < n; i++) {
        /* 1 - u lies in (0, 1]: the log is finite. */
        double gap = -log(1.0 - serve_rng_uniform(&arrivals));
        if (i > 0) t += isinf(rate) ? 0 : gap / rate * 1e3;
        out[i] = (struct serve_request){.id = i, .arrival_ms = t,
                                        .prompt_tokens = length_spec_draw(&s->prompt, i, &prompts),
                                        .output_tokens = length_spec_draw(&s->output, i, &outputs)};
    }
}

void serve_prompt_tokens(uint64_t seed, int id, int len, int vocab, int *out)
{
    uint64_t rng = seed ^ TOKEN_STREAM ^ ((uint64_t)(unsigned)id * 0xd1342543de82ef95ull);
    for (int i = 0; i < len; i++) out[i] = (int)(serve_rng_next(&rng) % (uint64_t)vocab);
}
