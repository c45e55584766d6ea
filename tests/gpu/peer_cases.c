/* See peer_cases.h. */
#include <stdio.h>
#include <stdlib.h>
#include "../test.h"
#include "peer_cases.h"

void peer_for_each_case(int *failures_, peer_case_fn fn)
{
    const char *root = getenv("PB_PEER_DIR");
    if (!root || !root[0]) {
        test_skip("PB_PEER_DIR is not set: no references from transformers (make test-gpu and "
                  "scripts/gpu_check.sh write them when python3 can import torch and transformers)");
        return;
    }
    static char names[PEER_MAX_CASES][PEER_NAME_LEN];
    int count = 0;
    CHECK(peer_case_names(root, names, PEER_MAX_CASES, &count) == 0);
    for (int i = 0; i < count; i++) {
        struct peer_case c;
        struct model_spec m;
        char path[1200];
        if (peer_case_load(root, names[i], &c) != 0) {
            CHECK(!"peer reference loads");
            continue;
        }
        snprintf(path, sizeof path, "%s/config.json", c.dir);
        int ok = model_spec_load(path, &m) == 0;
        CHECK(ok);
        if (ok) CHECK_EQ_INT(m.vocab, c.vocab);
        if (ok && m.vocab == c.vocab) fn(failures_, &c, &m);
        peer_case_free(&c);
    }
}
