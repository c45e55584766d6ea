/* The one way this project reads JSON: cJSON plus the checks it leaves out. A
 * message names the file, the line and column, and the problem; nesting is
 * bounded (cJSON recurses); a key given twice in one object is refused, since
 * Python's json (and so transformers) takes the last and cJSON the first. */
#ifndef PB_JSON_LOAD_H
#define PB_JSON_LOAD_H
#include <stddef.h>
#include <cjson/cJSON.h>

#define JSON_MAX_DEPTH 64

/* Parse len bytes of text (text[len] must be readable and is ignored); `origin`
 * names the text in messages. *out is the document, cJSON_Delete it. */
int json_parse_text(const char *origin, const char *text, size_t len, cJSON **out);
/* Read a regular file whole and parse it; folders, FIFOs and devices are refused. */
int json_load_file(const char *path, cJSON **out);
#endif
