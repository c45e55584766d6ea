/* Reader of the peer references; see peer_reference.h. */
#include "peer_reference.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../../base/text_file.h"

static cJSON *read_json(const char *path)
{
    char *text = text_file_read(path);
    if (!text) {
        pb_fail("%s: cannot read (%s): run scripts/make_peer_reference.py", path, strerror(errno));
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) pb_fail("%s: not valid JSON", path);
    return j;
}

int peer_case_names(const char *root, char names[][PEER_NAME_LEN], int max, int *count)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/cases.json", root);
    cJSON *j = read_json(path);
    if (!j) return PB_ERR;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "cases");
    int rc = PB_OK, n = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || n < 1 || n > max)
        rc = pb_fail("%s: cases: must be a list of 1 to %d case names", path, max);
    for (int i = 0; rc == PB_OK && i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(list, i);
        if (!cJSON_IsString(s) || !s->valuestring[0] || strlen(s->valuestring) >= PEER_NAME_LEN ||
            strchr(s->valuestring, '/'))
            rc = pb_fail("%s: cases[%d]: must be a folder name (no '/', under %d characters)", path, i,
                         PEER_NAME_LEN);
        else
            snprintf(names[i], PEER_NAME_LEN, "%s", s->valuestring);
    }
    cJSON_Delete(j);
    *count = rc == PB_OK ? n : 0;
    return rc;
}

/* A positive integer field of obj (named section.field in messages). */
static int get_int(const char *path, const cJSON *obj, const char *section, const char *field, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9 || v->valuedouble != (int)v->valuedouble)
        return pb_fail("%s: %s%s%s: missing or not a positive integer", path, section, *section ? "." : "", field);
    *out = (int)v->valuedouble;
    return PB_OK;
}

/* A list of exactly n token ids in [0, vocab). */
static int get_tokens(const char *path, const cJSON *obj, const char *section, const char *field, int n, int vocab,
                      int **out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return pb_fail("%s: %s.%s: must be a list of %d token ids", path, section, field, n);
    *out = malloc((size_t)n * sizeof **out);
    if (!*out) return pb_fail("%s: out of memory", path);
    int i = 0;
    for (const cJSON *t = a->child; t; t = t->next, i++) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= vocab || t->valuedouble != (int)t->valuedouble)
            return pb_fail("%s: %s.%s[%d]: not a token id in [0, %d)", path, section, field, i, vocab);
        (*out)[i] = (int)t->valuedouble;
    }
    return PB_OK;
}

/* The file named by obj.field (relative to dir): exactly rows x vocab float32. */
static int get_logits(const char *path, const char *dir, const cJSON *obj, const char *section, const char *field,
                      size_t rows, int vocab, float **out)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsString(name) || !name->valuestring[0] || strchr(name->valuestring, '/'))
        return pb_fail("%s: %s.%s: must name a file of the case's folder", path, section, field);
    char file[1400];
    snprintf(file, sizeof file, "%s/%s", dir, name->valuestring);
    size_t n = rows * vocab;
    FILE *f = fopen(file, "rb");
    if (!f) return pb_fail("%s (%s.%s): cannot open (%s)", file, section, field, strerror(errno));
    *out = malloc(n * sizeof **out);
    size_t got = *out ? fread(*out, sizeof **out, n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (!*out) return pb_fail("%s: out of memory for %zu logits", file, n);
    if (got != n || extra)
        return pb_fail("%s (%s.%s): expected %zu float32 logits ([%zu, %d]), found %s", file, section, field, n, rows,
                       vocab, got != n ? "fewer" : "more");
    return PB_OK;
}

#define MAX_LOGITS ((size_t)1 << 30)  /* 4 GiB of float32: far beyond any small reference */

static int load(const char *path, const cJSON *j, struct peer_case *c)
{
    PB_TRY(get_int(path, j, "", "vocab", &c->vocab));
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "prefill");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decode");
    if (!cJSON_IsObject(pre) || !cJSON_IsObject(dec))
        return pb_fail("%s: prefill and decode: must be objects (written by scripts/make_peer_reference.py)", path);
    PB_TRY(get_int(path, pre, "prefill", "batch", &c->prefill_batch));
    PB_TRY(get_int(path, pre, "prefill", "seq", &c->prefill_seq));
    size_t rows = (size_t)c->prefill_batch * c->prefill_seq;
    if (rows * c->vocab > MAX_LOGITS) return pb_fail("%s: prefill: batch x seq x vocab exceeds 2^30 logits", path);
    PB_TRY(get_tokens(path, pre, "prefill", "tokens", (int)rows, c->vocab, &c->prefill_tokens));
    PB_TRY(get_logits(path, c->dir, pre, "prefill", "logits_bf16", rows, c->vocab, &c->prefill_bf16));
    PB_TRY(get_logits(path, c->dir, pre, "prefill", "logits_fp32", rows, c->vocab, &c->prefill_fp32));
    PB_TRY(get_int(path, dec, "decode", "batch", &c->decode_batch));
    PB_TRY(get_int(path, dec, "decode", "prompt_len", &c->prompt_len));
    PB_TRY(get_int(path, dec, "decode", "steps", &c->steps));
    if ((size_t)c->decode_batch * (c->prompt_len + c->steps) * c->vocab > MAX_LOGITS)
        return pb_fail("%s: decode: batch x (prompt_len + steps) x vocab exceeds 2^30 logits", path);
    int out = c->decode_batch * c->steps;
    PB_TRY(get_tokens(path, dec, "decode", "prompt", c->decode_batch * c->prompt_len, c->vocab, &c->prompt));
    PB_TRY(get_tokens(path, dec, "decode", "tokens_fp32", out, c->vocab, &c->tokens_fp32));
    PB_TRY(get_tokens(path, dec, "decode", "tokens_bf16", out, c->vocab, &c->tokens_bf16));
    PB_TRY(get_logits(path, c->dir, dec, "decode", "logits_fp32", out, c->vocab, &c->decode_fp32));
    return get_logits(path, c->dir, dec, "decode", "logits_bf16", out, c->vocab, &c->decode_bf16);
}

int peer_case_load(const char *root, const char *name, struct peer_case *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->dir, sizeof c->dir, "%s/%s", root, name);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.json", c->dir);
    cJSON *j = read_json(path);
    int rc = j ? load(path, j, c) : PB_ERR;
    cJSON_Delete(j);
    if (rc != PB_OK) peer_case_free(c);
    return rc;
}

void peer_case_free(struct peer_case *c)
{
    free(c->prefill_tokens), free(c->prefill_bf16), free(c->prefill_fp32);
    free(c->prompt), free(c->tokens_fp32), free(c->tokens_bf16);
    free(c->decode_fp32), free(c->decode_bf16);
    c->prefill_tokens = c->prompt = c->tokens_fp32 = c->tokens_bf16 = NULL;
    c->prefill_bf16 = c->prefill_fp32 = c->decode_fp32 = c->decode_bf16 = NULL;
}
