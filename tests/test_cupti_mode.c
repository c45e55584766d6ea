/* PB_CUPTI_MODE (harness/measure/cupti_mode.h): the tracing variants the profiled
 * iterations can run under, and scripts/cupti_overhead.sh, which measures each of
 * them, naming only modes that parse. */
#include <stdio.h>
#include <string.h>
#include "../base/check.h"
#include "../harness/measure/cupti_mode.h"
#include "test.h"

TEST(test_cupti_mode_defaults_to_gate_and_copies)
{
    struct cupti_mode m = {0};
    char text[32];
    CHECK_EQ_INT(cupti_mode_parse(NULL, &m), PB_OK);
    CHECK(m.gate == 1 && m.copies == 1 && m.own_zero == 1);
    CHECK_EQ_INT(cupti_mode_parse("", &m), PB_OK);
    CHECK(m.gate == 1 && m.copies == 1 && m.own_zero == 1);
    cupti_mode_describe(&m, text, sizeof text);
    CHECK(strcmp(text, "gate,copies,ownzero") == 0);
}

TEST(test_cupti_mode_words_set_their_pair_and_the_last_one_wins)
{
    struct cupti_mode m;
    char text[32];
    CHECK_EQ_INT(cupti_mode_parse("nogate", &m), PB_OK);
    CHECK(m.gate == 0 && m.copies == 1);
    CHECK_EQ_INT(cupti_mode_parse("nocopies,nogate,cuptizero", &m), PB_OK);
    CHECK(m.gate == 0 && m.copies == 0 && m.own_zero == 0);
    cupti_mode_describe(&m, text, sizeof text);
    CHECK(strcmp(text, "nogate,nocopies,cuptizero") == 0);
    CHECK_EQ_INT(cupti_mode_parse("nogate,gate,", &m), PB_OK);
    CHECK(m.gate == 1);
}

TEST(test_cupti_mode_refuses_an_unknown_word_by_name)
{
    struct cupti_mode m;
    CHECK_EQ_INT(cupti_mode_parse("gate,hwtrace", &m), PB_ERR);
    CHECK(strstr(pb_last_error(), "PB_CUPTI_MODE") && strstr(pb_last_error(), "\"hwtrace\""));
    CHECK_EQ_INT(cupti_mode_parse("gates", &m), PB_ERR);
}

/* Every variant line of the script is "name|mode|flags": each mode must parse, and
 * the four gate x copies combinations and both zeroings must all be there. */
TEST(test_cupti_overhead_script_runs_every_mode_and_only_valid_ones)
{
    FILE *f = fopen("scripts/cupti_overhead.sh", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[256];
    int seen[2][2] = {{0}}, zero[2] = {0}, variants = 0, step = 0, nocupti = 0;
    while (fgets(line, sizeof line, f)) {
        nocupti |= strstr(line, "--no-cupti") != NULL;
        char name[64], mode[64];
        if (sscanf(line, " \"%63[^|]|%63[^|]|", name, mode) != 2) continue;
        struct cupti_mode m;
        CHECK_EQ_INT(cupti_mode_parse(mode, &m), PB_OK);
        seen[m.gate][m.copies] = 1;
        zero[m.own_zero] = 1;
        step |= strstr(line, "--profile-detail step") != NULL;
        variants++;
    }
    fclose(f);
    CHECK(variants >= 4);
    CHECK(seen[0][0] && seen[0][1] && seen[1][0] && seen[1][1]);
    CHECK(zero[0] && zero[1]);
    CHECK(step && nocupti);
}
