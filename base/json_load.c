#include "json_load.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "text_file.h"

static void line_column(const char *text, size_t at, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

/* Before cJSON sees it: the first place nesting passes JSON_MAX_DEPTH, or len. */
static size_t too_deep_at(const char *text, size_t len)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > JSON_MAX_DEPTH) return i;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return len;
}

/* The dotted path of `key` under `where`, for messages. */
static void child_path(char *buf, size_t len, const char *where, const char *key)
{
    snprintf(buf, len, "%s%s%s", where, where[0] ? "." : "", key);
}

static int check_unique_keys(const char *origin, const cJSON *node, const char *where, int depth)
{
    for (const cJSON *c = node->child; c; c = c->next) {
        char at[256];
        if (cJSON_IsObject(node)) {
            for (const cJSON *d = node->child; d != c; d = d->next)
                if (!strcmp(d->string, c->string)) {
                    child_path(at, sizeof at, where, c->string);
                    return pb_fail("%s: %s: the key is given twice (Python's json would take the last "
                                   "value, this reader would take the first): keep one", origin, at);
                }
            child_path(at, sizeof at, where, c->string);
        } else {
            snprintf(at, sizeof at, "%s[]", where);
        }
        if (c->child && depth < JSON_MAX_DEPTH) PB_TRY(check_unique_keys(origin, c, at, depth + 1));
    }
    return PB_OK;
}

int json_parse_text(const char *origin, const char *text, size_t len, cJSON **out)
{
    *out = NULL;
    int line, column;
    size_t deep = too_deep_at(text, len);
    if (deep < len) {
        line_column(text, deep, &line, &column);
        return pb_fail("%s: line %d, column %d: JSON nested deeper than %d levels", origin, line, column,
                       JSON_MAX_DEPTH);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* Trailing text after the document is an error, as in Python's json. */
    size_t stop = end ? (size_t)(end - text) : len;
    while (root && stop < len && strchr(" \t\r\n", text[stop])) stop++;
    if (!root || stop < len) {
        cJSON_Delete(root);
        if (stop > len) stop = len;
        line_column(text, stop, &line, &column);
        return pb_fail("%s: line %d, column %d: malformed JSON%s", origin, line, column,
                       root ? " (text after the document)" : stop == len ? " (it ends early)" : "");
    }
    if (check_unique_keys(origin, root, "", 0) != PB_OK) {
        cJSON_Delete(root);
        return PB_ERR;
    }
    *out = root;
    return PB_OK;
}

int json_load_file(const char *path, cJSON **out)
{
    *out = NULL;
    char *text = text_file_read(path);
    if (!text) return pb_fail("%s: cannot read: %s", path, text_file_strerror(errno));
    int rc = json_parse_text(path, text, strlen(text), out);
    free(text);
    return rc;
}
