/* Finding a device profile (device_profile_load): a path to a .json file, or a
 * name looked up as profiles/<name>.json in the current folder and beside the
 * program; a name not found is answered with the names that exist. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_profile.h"
#include "../../../base/check.h"
#include "../../../base/text_file.h"

static char *read_file(const char *path, int *missing)
{
    char *text = text_file_read(path);
    *missing = !text && errno == ENOENT;
    return text;
}


/* Directories that may hold profiles/: the current one, then the executable's
 * folder and its parent (build/bench run from elsewhere finds ../profiles). */
static int candidate_dirs(char dirs[3][PATH_MAX])
{
    int n = 0;
    snprintf(dirs[n++], PATH_MAX, "profiles");
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(dirs[n++], PATH_MAX, "%.*s/profiles", PATH_MAX - 16, exe);
            snprintf(dirs[n++], PATH_MAX, "%.*s/../profiles", PATH_MAX - 16, exe);
        }
    }
    return n;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The profile names in `dir`, sorted, as "a100, h100, ...". */
static void list_known(const char *dir, char *buf, size_t len)
{
    buf[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    char names[64][64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t l = strlen(e->d_name);
        if (l > 5 && l < 64 && !strcmp(e->d_name + l - 5, ".json"))
            snprintf(names[n++], sizeof names[0], "%.*s", (int)(l - 5), e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], name_cmp);
    size_t used = 0;
    for (int i = 0; i < n && used + strlen(names[i]) + 3 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
}

int device_profile_load(const char *name_or_path, struct device_profile *out)
{
    if (!name_or_path || !name_or_path[0]) return pb_fail("no device profile named (--gpu-profile NAME)");
    size_t n = strlen(name_or_path);
    int is_path = strchr(name_or_path, '/') || (n > 5 && !strcmp(name_or_path + n - 5, ".json"));
    int missing;
    if (is_path) {
        char *text = read_file(name_or_path, &missing);
        if (!text) return pb_fail("%s: cannot read device profile: %s", name_or_path, text_file_strerror(errno));
        int rc = device_profile_parse(text, name_or_path, out);
        free(text);
        return rc;
    }
    for (const char *c = name_or_path; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return pb_fail("device profile name \"%s\": use lower-case letters, digits, - and _ "
                           "(or give a path to a .json file)", name_or_path);
    char dirs[3][PATH_MAX];
    int nd = candidate_dirs(dirs);
    for (int i = 0; i < nd; i++) {
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%.4000s/%.64s.json", dirs[i], name_or_path);
        char *text = read_file(path, &missing);
        if (!text) {
            if (missing) continue;
            return pb_fail("%s: cannot read device profile: %s", path, text_file_strerror(errno));
        }
        /* Messages name the profile as the user knows it, not our search path. */
        char origin[128];
        snprintf(origin, sizeof origin, "profiles/%.64s.json", name_or_path);
        int rc = device_profile_parse(text, origin, out);
        free(text);
        return rc;
    }
    char known[512] = "";
    for (int i = 0; i < nd && !known[0]; i++) list_known(dirs[i], known, sizeof known);
    return pb_fail("no device profile \"%s\" (looked for profiles/%s.json in the current folder and "
                   "beside the program); known profiles: %s", name_or_path, name_or_path,
                   known[0] ? known : "none found");
}

