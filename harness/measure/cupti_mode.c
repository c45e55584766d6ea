/* PB_CUPTI_MODE, parsed (cupti_mode.h). */
#include "cupti_mode.h"

#include <stdio.h>
#include <string.h>
#include "../../base/check.h"

int cupti_mode_parse(const char *text, struct cupti_mode *out)
{
    *out = (struct cupti_mode){.gate = 1, .copies = 1, .own_zero = 1};
    if (!text) return PB_OK;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 4 && !strncmp(p, "gate", n)) out->gate = 1;
        else if (n == 6 && !strncmp(p, "nogate", n)) out->gate = 0;
        else if (n == 6 && !strncmp(p, "copies", n)) out->copies = 1;
        else if (n == 8 && !strncmp(p, "nocopies", n)) out->copies = 0;
        else if (n == 7 && !strncmp(p, "ownzero", n)) out->own_zero = 1;
        else if (n == 9 && !strncmp(p, "cuptizero", n)) out->own_zero = 0;
        else if (n > 0)
            return pb_fail("PB_CUPTI_MODE: \"%.*s\" is not gate, nogate, copies, nocopies, ownzero or "
                           "cuptizero (in \"%s\")", (int)n, p, text);
        p += n;
        if (*p == ',') p++;
    }
    return PB_OK;
}

void cupti_mode_describe(const struct cupti_mode *m, char *out, size_t len)
{
    snprintf(out, len, "%s,%s,%s", m->gate ? "gate" : "nogate", m->copies ? "copies" : "nocopies",
             m->own_zero ? "ownzero" : "cuptizero");
}
