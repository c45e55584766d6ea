/* The references scripts/make_peer_reference.py writes (its docstring has the
 * format): ROOT/cases.json names the cases, ROOT/CASE/ holds one model, its
 * prefill and decode tokens, and transformers' bf16 and fp32 logits. Plain C, so
 * the reader is tested on the CPU. */
#ifndef PB_PEER_REFERENCE_H
#define PB_PEER_REFERENCE_H

#ifdef __cplusplus
extern "C" {
#endif

#define PEER_MAX_CASES 64
#define PEER_NAME_LEN 128

struct peer_case {
    char name[PEER_NAME_LEN];
    char dir[1024];              /* the model folder: config.json, model.safetensors */
    int vocab;
    int prefill_batch, prefill_seq;
    int *prefill_tokens;         /* [batch, seq] */
    float *prefill_bf16, *prefill_fp32;  /* [batch * seq, vocab] */
    int decode_batch, prompt_len, steps;
    int *prompt;                 /* [batch, prompt_len] */
    int *tokens_fp32, *tokens_bf16;      /* [batch, steps]: generate() in fp32 and in bf16 */
    float *decode_fp32, *decode_bf16;    /* [batch * steps, vocab]: row b*steps+t chose token t
                                          * of sequence b, both in the fp32 run's contexts */
};

/* The case names of ROOT/cases.json, in order. */
int peer_case_names(const char *root, char names[][PEER_NAME_LEN], int max, int *count);
/* Load ROOT/NAME; on failure a message names the file and the field, and *c is freed. */
int peer_case_load(const char *root, const char *name, struct peer_case *c);
void peer_case_free(struct peer_case *c);

#ifdef __cplusplus
}
#endif
#endif
