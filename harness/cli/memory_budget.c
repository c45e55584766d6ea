/* --max-memory parsing, following accelerate's get_max_memory and convert_file_size_to_int
 * so that a spec means here what it means to from_pretrained(max_memory=...). */
#include "memory_budget.h"
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"

#define ENTRY_MAX 128

struct size_unit {
    const char *suffix;   /* compared case-insensitively, as accelerate's size.upper() */
    double scale;
    int decimal;          /* GB/MB/KB: a trailing lowercase "b" means bits */
};

/* Longest suffixes first: "GIB" must win over "B"-ending decimal units. */
static const struct size_unit units[] = {
    {"GIB", 1073741824.0, 0}, {"MIB", 1048576.0, 0}, {"KIB", 1024.0, 0},
    {"GB", 1e9, 1},           {"MB", 1e6, 1},        {"KB", 1e3, 1},
};

static int ends_with_nocase(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* A decimal number as Python's float() reads one (blanks around it allowed, so "80 GiB"
 * works), less inf/nan/hex, which no budget needs. */
static int parse_number(const char *s, size_t n, double *out)
{
    char buf[ENTRY_MAX];
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    int digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)buf[i])) digits = 1;
        else if (!strchr(".eE+-", buf[i])) return -1;
    }
    char *end;
    *out = strtod(buf, &end);
    return digits && *end == 0 ? 0 : -1;
}

int memory_size_parse(const char *text, uint64_t *bytes)
{
    size_t n = strlen(text);
    if (all_digits(text, n)) {
        char *end;
        unsigned long long v = strtoull(text, &end, 10);
        if (v == ULLONG_MAX) return -1;
        *bytes = v;
        return 0;
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t k = strlen(units[u].suffix);
        if (!ends_with_nocase(text, n, units[u].suffix)) continue;
        double number;
        if (parse_number(text, n - k, &number) != 0) return -1;
        /* Python: int(float(number) * scale), truncated toward zero. */
        double value = trunc(number * units[u].scale);
        if (!(value >= 0) || value >= 18446744073709551616.0) return -1;
        uint64_t v = (uint64_t)value;
        if (units[u].decimal && text[n - 1] == 'b') v /= 8;
        *bytes = v;
        return 0;
    }
    return -1;
}

/* Copy [s, s+n) without surrounding blanks into out (ENTRY_MAX bytes). */
static void trimmed(const char *s, size_t n, char *out)
{
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n >= ENTRY_MAX) n = ENTRY_MAX - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Key -> GPU index, or PB_DEVICE_CPU for "cpu". */
static int parse_key(const char *entry, const char *key, int *device)
{
    if (strcmp(key, "cpu") == 0) {
        *device = PB_DEVICE_CPU;
        return PB_OK;
    }
    if (strcmp(key, "disk") == 0 || strcmp(key, "mps") == 0)
        return pb_fail("--max-memory: entry \"%s\": placebench keeps weights on GPUs or in host memory; "
                       "\"%s\" is not supported", entry, key);
    size_t n = strlen(key);
    if (!all_digits(key, n) || n > 3 || atoi(key) >= PB_MAX_DEVICES)
        return pb_fail("--max-memory: entry \"%s\": \"%s\" is not a device (use a GPU index 0..%d or cpu)",
                       entry, key, PB_MAX_DEVICES - 1);
    *device = atoi(key);
    return PB_OK;
}

static int parse_entry(const char *entry, struct machine *mc, unsigned char *seen, int *cpu_seen)
{
    const char *eq = strchr(entry, '=');
    if (!eq) return pb_fail("--max-memory: entry \"%s\" has no '=' (write DEVICE=SIZE, e.g. 0=80GiB)", entry);
    char key[ENTRY_MAX], value[ENTRY_MAX];
    trimmed(entry, (size_t)(eq - entry), key);
    trimmed(eq + 1, strlen(eq + 1), value);
    int device = 0;
    PB_TRY(parse_key(entry, key, &device));
    uint64_t bytes;
    if (memory_size_parse(value, &bytes) != 0)
        return pb_fail("--max-memory: entry \"%s\": \"%s\" is not a size (use bytes, or a number with "
                       "GiB, MiB, KiB, GB, MB or KB, e.g. 80GiB)", entry, value);
    int *dup = device == PB_DEVICE_CPU ? cpu_seen : NULL;
    if (dup ? *dup : seen[device])
        return pb_fail("--max-memory: entry \"%s\": device %s is given twice", entry, key);
    if (dup) {
        *dup = 1;
        mc->cpu_memory = bytes;
    } else {
        seen[device] = 1;
        mc->gpu_memory[device] = bytes;
    }
    return PB_OK;
}

int memory_budget_parse(const char *spec, struct machine *mc)
{
    unsigned char seen[PB_MAX_DEVICES] = {0};
    int cpu_seen = 0;
    memset(mc->gpu_memory, 0, sizeof mc->gpu_memory);
    mc->cpu_memory = 0;
    mc->budgets_from_user = 1;
    for (const char *s = spec;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char entry[ENTRY_MAX];
        trimmed(s, n, entry);
        if (!entry[0]) return pb_fail("--max-memory: \"%s\" has an empty entry (write 0=80GiB,cpu=512GiB)", spec);
        if (n >= ENTRY_MAX) return pb_fail("--max-memory: entry \"%.40s...\" is too long", entry);
        PB_TRY(parse_entry(entry, mc, seen, &cpu_seen));
        if (!comma) break;
        s = comma + 1;
    }
    return PB_OK;
}

int memory_budget_check_gpus(const struct machine *mc, int gpus)
{
    for (int i = gpus; i < PB_MAX_DEVICES; i++)
        if (mc->gpu_memory[i] > 0)
            return pb_fail("--max-memory: GPU %d has a budget but only %d GPU%s used (--gpus)", i, gpus,
                           gpus == 1 ? " is" : "s are");
    return PB_OK;
}
