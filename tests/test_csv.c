/* RFC 4180: quoting only where needed, quotes doubled, CRLF records, unknown empty. */
#include <math.h>
#include <stdlib.h>
#include "../base/csv.h"
#include "test.h"

static char *render(void (*write)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    write(f);
    fclose(f);
    return buf;
}

static void awkward_row(FILE *f)
{
    csv_field(f, "plain", 1);
    csv_field(f, "a,b", 0);
    csv_field(f, "say \"hi\"", 0);
    csv_field(f, "two\nlines", 0);
    csv_number(f, 2.5, 0);
    csv_number(f, NAN, 0);
    csv_end(f);
}

TEST(test_csv_quotes_only_fields_that_need_it)
{
    char *s = render(awkward_row);
    CHECK(!strcmp(s, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",2.5,\r\n"));
    free(s);
}
