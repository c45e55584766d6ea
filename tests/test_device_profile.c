/* Device profiles: the shipped ones load, bad ones are refused with a message that
 * names the file and the field, and what calibrate writes reads back the same. */
#include <math.h>
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/device_profile.h"
#include "test.h"

static const char *const shipped[] = {"h100", "h200", "a100", "l40s", "rtx4090"};

/* A valid profile as text, with one substitution applied (or none). */
static const char *valid_json =
    "{\"name\": \"t\", \"gpu\": \"Test GPU\","
    " \"memory\": {\"bytes\": 1000000000, \"source\": \"s\"},"
    " \"bf16_gemm_tflops\": {\"achievable\": 100, \"peak\": 200, \"source\": \"s\"},"
    " \"memory_bandwidth_gbps\": {\"achievable\": 1000, \"peak\": 2000, \"source\": \"s\"},"
    " \"launch_overhead_us\": {\"value\": 3, \"source\": \"s\"},"
    " \"peer_link\": \"nvlink\","
    " \"links\": {\"nvlink\": {\"gbps\": 300, \"peak_gbps\": 450, \"latency_us\": 8, \"source\": \"s\"},"
    "            \"pcie\": {\"gbps\": 50, \"peak_gbps\": 64, \"latency_us\": 10, \"source\": \"s\"}},"
    " \"allreduce\": {\"algorithm\": \"ring\", \"bus_gbps\": 250, \"step_latency_us\": 3, \"source\": \"s\"}}";

static int parse_with(const char *from, const char *to, struct device_profile *p)
{
    char buf[4096];
    const char *at = strstr(valid_json, from);
    if (!at) return 99;
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - valid_json), valid_json, to, at + strlen(from));
    return device_profile_parse(buf, "bad.json", p);
}

/* The valid text with `members` (more members of its top-level object) added at its end. */
static int parse_with_members(const char *members, const char *origin, struct device_profile *p)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s, %s}", (int)strlen(valid_json) - 1, valid_json, members);
    return device_profile_parse(buf, origin, p);
}

/* Writes `a` to a file of a fresh temporary folder (the write must succeed), loads
 * that file into `b` and removes both; the load's status. */
static int write_and_load(int *failures_, const struct device_profile *a, struct device_profile *b)
{
    char dir[256], path[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/calibrated.json", dir);
    CHECK_EQ_INT(device_profile_write(a, path), PB_OK);
    int rc = device_profile_load(path, b);
    remove(path);
    remove(dir);
    return rc;
}

TEST(test_every_shipped_profile_loads_with_sources)
{
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        struct device_profile p;
        CHECK_EQ_INT(device_profile_load(shipped[i], &p), PB_OK);
        CHECK(!strcmp(p.name, shipped[i]));
        CHECK(p.bf16_tflops > 0 && p.bf16_tflops <= p.bf16_peak_tflops);
        CHECK(p.hbm_gbps > 0 && p.hbm_gbps <= p.hbm_peak_gbps);
        CHECK(p.memory_bytes > (uint64_t)16 << 30);
        CHECK(p.gemm_source[0] && p.hbm_source[0] && p.memory_source[0] && p.launch_source[0]);
        CHECK(p.allreduce.source[0] && p.link[LINK_PCIE].source[0]);
        CHECK(p.link[p.peer_link].present);
        /* Every shipped profile prices kernels one by one, with a source. */
        CHECK(p.kernels.present && p.kernels.n_gemm > 0 && p.kernels.n_gemv > 0);
        CHECK(p.kernels.attention_tflops > 0 && p.kernels.source[0]);
    }
}

TEST(test_profile_loads_by_path_too)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_load("profiles/h200.json", &p), PB_OK);
    CHECK(!strcmp(p.name, "h200"));
    /* The numbers this project measured on 2xH200. */
    CHECK_NEAR(p.link[LINK_NVLINK].gbps, 396, 1e-9);
    CHECK_NEAR(p.allreduce.bus_gbps, 301, 1e-9);
    CHECK_EQ_INT(p.peer_link, LINK_NVLINK);
}

TEST(test_gpus_without_nvlink_copy_over_pcie)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_load("l40s", &p), PB_OK);
    CHECK(!p.link[LINK_NVLINK].present);
    CHECK_EQ_INT(p.peer_link, LINK_PCIE);
    CHECK_EQ_INT(device_profile_load("rtx4090", &p), PB_OK);
    CHECK(p.link[LINK_PCIE].peer_gbps < p.link[LINK_PCIE].gbps);  /* P2P off: staged via host */
}

TEST(test_unknown_profile_lists_the_known_ones)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_load("b300", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "b300"));
    CHECK(strstr(pb_last_error(), "h200"));
    CHECK_EQ_INT(device_profile_load("../etc/passwd.json", &p), PB_ERR);
    CHECK_EQ_INT(device_profile_load("H200!", &p), PB_ERR);
}

TEST(test_valid_text_parses)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_parse(valid_json, "ok.json", &p), PB_OK);
    CHECK_NEAR(p.link[LINK_NVLINK].peer_gbps, 300, 1e-9);   /* defaults to gbps */
    CHECK_EQ_INT(p.measured, 0);
}

TEST(test_missing_field_names_file_and_field)
{
    struct device_profile p;
    CHECK_EQ_INT(parse_with("\"peak\": 200, ", "", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "bad.json"));
    CHECK(strstr(pb_last_error(), "bf16_gemm_tflops.peak"));
    CHECK(strstr(pb_last_error(), "missing"));
    CHECK_EQ_INT(parse_with("\"latency_us\": 10, ", "", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "links.pcie.latency_us"));
}

TEST(test_wrong_types_and_values_are_refused)
{
    struct device_profile p;
    CHECK_EQ_INT(parse_with("\"achievable\": 100", "\"achievable\": \"fast\"", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "bf16_gemm_tflops.achievable: must be a number"));
    CHECK_EQ_INT(parse_with("\"achievable\": 100", "\"achievable\": 300", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "exceeds peak"));
    CHECK_EQ_INT(parse_with("\"achievable\": 1000", "\"achievable\": -5", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "memory_bandwidth_gbps.achievable"));
    CHECK_EQ_INT(parse_with("\"bytes\": 1000000000", "\"bytes\": 0", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "memory.bytes"));
    CHECK_EQ_INT(parse_with("\"peer_link\": \"nvlink\"", "\"peer_link\": \"infiniband\"", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "peer_link"));
    CHECK_EQ_INT(parse_with("\"algorithm\": \"ring\"", "\"algorithm\": \"tree\"", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "allreduce.algorithm"));
}

TEST(test_peer_link_must_exist)
{
    struct device_profile p;
    CHECK_EQ_INT(parse_with("\"gbps\": 300, \"peak_gbps\": 450, \"latency_us\": 8,", "\"present\": false,",
                            &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "peer_link"));
    CHECK(strstr(pb_last_error(), "nvlink"));
}

TEST(test_malformed_json_is_refused)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_parse("{\"name\": ", "broken.json", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "broken.json"));
    CHECK(strstr(pb_last_error(), "malformed"));
    CHECK_EQ_INT(device_profile_parse("[1, 2]", "array.json", &p), PB_ERR);
}

TEST(test_written_profile_reads_back_the_same)
{
    struct device_profile a, b;
    CHECK_EQ_INT(device_profile_load("rtx4090", &a), PB_OK);
    a.measured = 1;
    CHECK_EQ_INT(write_and_load(failures_, &a, &b), PB_OK);
    CHECK(!strcmp(a.name, b.name) && !strcmp(a.gpu, b.gpu));
    CHECK_EQ_INT(b.measured, 1);
    CHECK_EQ_INT(a.memory_bytes, b.memory_bytes);
    CHECK_NEAR(a.bf16_tflops, b.bf16_tflops, 1e-9);
    CHECK_NEAR(a.hbm_peak_gbps, b.hbm_peak_gbps, 1e-9);
    CHECK_NEAR(a.launch_us, b.launch_us, 1e-9);
    CHECK_EQ_INT(a.peer_link, b.peer_link);
    CHECK_EQ_INT(b.link[LINK_NVLINK].present, 0);
    CHECK_NEAR(a.link[LINK_PCIE].peer_gbps, b.link[LINK_PCIE].peer_gbps, 1e-9);
    CHECK_NEAR(a.allreduce.bus_gbps, b.allreduce.bus_gbps, 1e-9);
    CHECK(!strcmp(a.allreduce.source, b.allreduce.source));
    CHECK_EQ_INT(b.kernels.present, 1);
    CHECK_EQ_INT(b.kernels.n_gemm, a.kernels.n_gemm);
    CHECK_EQ_INT(b.kernels.n_gemv, a.kernels.n_gemv);
    CHECK_NEAR(b.kernels.gemm[0].compute, a.kernels.gemm[0].compute, 1e-9);
    CHECK_NEAR(b.kernels.gemv[0].compute, 1, 0);   /* left out in JSON: only bandwidth binds */
    CHECK_NEAR(b.kernels.attention_tflops, a.kernels.attention_tflops, 1e-9);
}

TEST(test_writer_refuses_an_invalid_profile)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_load("h200", &p), PB_OK);
    p.bf16_tflops = 0;
    CHECK_EQ_INT(device_profile_write(&p, "/tmp/placebench-never-written.json"), PB_ERR);
    FILE *f = fopen("/tmp/placebench-never-written.json", "r");
    CHECK(f == NULL);
    if (f) fclose(f);
}

/* The valid text with a "kernels" object appended: its gemm table `gemm`, and `more`
 * members of it ("" for none, else ending in ", "). */
static int parse_kernels_with(const char *gemm, const char *more, struct device_profile *p)
{
    char kernels[2048];
    snprintf(kernels, sizeof kernels, "\"kernels\": {\"gemm\": %s, \"gemv\": [{\"rows\": 1, \"memory\": 0.8}], %s"
             "\"attention_tflops\": 50, \"memory_efficiency\": 0.9, \"source\": \"s\"}", gemm, more);
    return parse_with_members(kernels, "k.json", p);
}

TEST(test_profile_without_kernels_keeps_one_roofline)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_parse(valid_json, "ok.json", &p), PB_OK);
    CHECK_EQ_INT(p.kernels.present, 0);
}

TEST(test_kernel_tables_are_checked)
{
    struct device_profile p;
    CHECK_EQ_INT(parse_kernels_with("[{\"rows\": 16, \"compute\": 0.5, \"memory\": 0.7},"
                                    " {\"rows\": 4096, \"compute\": 0.85, \"memory\": 0.7}]", "", &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemm, 2);
    CHECK_EQ_INT(parse_kernels_with("[{\"rows\": 64, \"compute\": 0.5, \"memory\": 0.7},"
                                    " {\"rows\": 16, \"compute\": 0.85, \"memory\": 0.7}]", "", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "kernels.gemm[1].rows: must rise"));
    CHECK_EQ_INT(parse_kernels_with("[{\"rows\": 16, \"compute\": 3, \"memory\": 0.7}]", "", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "kernels.gemm[0]"));
    CHECK_EQ_INT(parse_kernels_with("[]", "", &p), PB_ERR);
    CHECK_EQ_INT(parse_kernels_with("[{\"rows\": 16, \"compute\": 0.5}]", "", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "kernels.gemm[0].memory: missing"));
}

TEST(test_efficiency_is_interpolated_in_log_rows_and_held_at_the_ends)
{
    struct efficiency_point t[] = {{.rows = 16, .compute = 0.2, .memory = 0.8},
                                   {.rows = 256, .compute = 0.6, .memory = 0.4}};
    CHECK_NEAR(efficiency_at(t, 2, 1, 0), 0.2, 1e-12);
    CHECK_NEAR(efficiency_at(t, 2, 64, 0), 0.4, 1e-12);    /* halfway in log: 16 -> 64 -> 256 */
    CHECK_NEAR(efficiency_at(t, 2, 64, 1), 0.6, 1e-12);
    CHECK_NEAR(efficiency_at(t, 2, 8192, 1), 0.4, 1e-12);
    CHECK_NEAR(efficiency_at(t, 0, 64, 1), 1, 0);
}

TEST(test_peer_allreduce_table_is_optional_and_checked)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_parse(valid_json, "t.json", &p), PB_OK);
    CHECK(!p.peer_allreduce.present && !device_profile_allreduce_table(&p).known);
    CHECK_EQ_INT(parse_with_members("\"peer_allreduce\": {\"read_gbps\": 350, \"latency_us\": 2, "
                                    "\"oneshot_max_bytes\": 524288, \"twoshot_max_bytes\": 8388608, \"source\": \"s\"}",
                                    "t.json", &p), PB_OK);
    struct allreduce_table t = device_profile_allreduce_table(&p);
    CHECK(t.known && t.oneshot_max_bytes == 524288 && t.twoshot_max_bytes == 8388608);
    CHECK(p.peer_allreduce.read_gbps == 350 && p.peer_allreduce.latency_us == 2);
    /* two-shot takes over from one-shot: a smaller two-shot bound is refused, naming the field */
    CHECK_EQ_INT(parse_with_members("\"peer_allreduce\": {\"read_gbps\": 350, \"latency_us\": 2, "
                                    "\"oneshot_max_bytes\": 524288, \"twoshot_max_bytes\": 1000, \"source\": \"s\"}",
                                    "t.json", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "t.json: peer_allreduce.twoshot_max_bytes") != NULL);
    CHECK_EQ_INT(parse_with_members("\"peer_allreduce\": {\"latency_us\": 2, \"oneshot_max_bytes\": 1, "
                                    "\"twoshot_max_bytes\": 2, \"source\": \"s\"}", "t.json", &p), PB_ERR);
    CHECK(strstr(pb_last_error(), "peer_allreduce.read_gbps: missing") != NULL);
}

TEST(test_h200_profile_states_its_allreduce_crossovers_as_predicted)
{
    struct device_profile p;
    CHECK_EQ_INT(device_profile_load("h200", &p), PB_OK);
    CHECK(p.peer_allreduce.present && p.peer_allreduce.oneshot_max_bytes >= 8192);
    CHECK(strstr(p.peer_allreduce.source, "predicted") != NULL);
}

TEST(test_written_peer_allreduce_table_reads_back_the_same)
{
    struct device_profile a, b;
    CHECK_EQ_INT(device_profile_load("h200", &a), PB_OK);
    CHECK_EQ_INT(write_and_load(failures_, &a, &b), PB_OK);
    CHECK_EQ_INT(b.peer_allreduce.present, 1);
    CHECK_NEAR(b.peer_allreduce.read_gbps, a.peer_allreduce.read_gbps, 1e-9);
    CHECK_NEAR(b.peer_allreduce.latency_us, a.peer_allreduce.latency_us, 1e-9);
    CHECK(b.peer_allreduce.oneshot_max_bytes == a.peer_allreduce.oneshot_max_bytes);
    CHECK(b.peer_allreduce.twoshot_max_bytes == a.peer_allreduce.twoshot_max_bytes);
    CHECK(!strcmp(a.peer_allreduce.source, b.peer_allreduce.source));
}

TEST(test_shared_gpu_section_reads_back_and_is_checked)
{
    struct device_profile a, b;
    CHECK_EQ_INT(device_profile_load("h200", &a), PB_OK);
    CHECK_EQ_INT(a.shared_gpu.present, 0);   /* shipped profiles: not measured */
    a.shared_gpu = (struct shared_gpu_profile){.present = 1, .oneshot_us = 31, .twoshot_us = 44, .gbps = 3400,
                                               .source = "test"};
    a.shared_compute.layers = (struct shared_slowdown_table){
        2, {{.rows = 1, .slowdown = 1.02}, {.rows = 128, .slowdown = 1.3}}};
    a.shared_compute.tp = (struct shared_slowdown_table){1, {{.rows = 512, .slowdown = 1.01}}};
    snprintf(a.shared_compute.source, sizeof a.shared_compute.source, "pairs");
    CHECK_EQ_INT(write_and_load(failures_, &a, &b), PB_OK);
    CHECK_EQ_INT(b.shared_gpu.present, 1);
    CHECK_NEAR(b.shared_gpu.oneshot_us, 31, 1e-9);
    CHECK_NEAR(b.shared_gpu.twoshot_us, 44, 1e-9);
    CHECK_NEAR(b.shared_gpu.gbps, 3400, 1e-9);
    CHECK(!strcmp(b.shared_gpu.source, "test"));
    CHECK_EQ_INT(b.shared_compute.layers.n, 2);
    CHECK_EQ_INT(b.shared_compute.layers.point[1].rows, 128);
    CHECK_NEAR(b.shared_compute.layers.point[1].slowdown, 1.3, 1e-12);
    CHECK_EQ_INT(b.shared_compute.tp.n, 1);
    CHECK_NEAR(b.shared_compute.tp.point[0].slowdown, 1.01, 1e-12);
    CHECK(!strcmp(b.shared_compute.source, "pairs"));
    /* rows that do not rise are refused on reading, by field */
    a.shared_compute.layers.point[1].rows = 1;
    CHECK_EQ_INT(write_and_load(failures_, &a, &b), PB_ERR);
    CHECK(strstr(pb_last_error(), "shared_gpu_compute.points[1].rows: must rise") != NULL);
    a.shared_gpu.gbps = 0;
    CHECK_EQ_INT(device_profile_validate(&a, "x.json"), PB_ERR);
    CHECK(strstr(pb_last_error(), "x.json: shared_gpu.gbps") != NULL);
}

/* Calls below their part's tune rows (kernels/gemm_class.h): optional tables, so a
 * profile written before them loads and prices every call at its own rows; with them,
 * a call takes the points of its part's tune rows, and the ordinary table's value at
 * the tune rows closes the curve (a call of tune_rows rows is the tuned call). */
TEST(test_tuned_above_tables_are_optional_read_back_and_price_calls_below_their_tuning)
{
    struct device_profile a, b;
    CHECK_EQ_INT(device_profile_load("h200", &a), PB_OK);
    CHECK_EQ_INT(a.kernels.n_gemm_tuned_above, 0);
    CHECK_EQ_INT(a.shared_compute.tuned_above.n, 0);
    /* without the table: the gemm table at the call's rows, whatever the tune rows */
    CHECK_NEAR(gemm_efficiency_at(&a.kernels, 128, 512, 1), efficiency_at(a.kernels.gemm, a.kernels.n_gemm, 128, 1),
               0);
    a.kernels.n_gemm = 2;
    a.kernels.gemm[0] = (struct efficiency_point){.rows = 128, .compute = 0.4, .memory = 0.8};
    a.kernels.gemm[1] = (struct efficiency_point){.rows = 512, .compute = 0.7, .memory = 0.6};
    a.kernels.n_gemm_tuned_above = 3;
    a.kernels.gemm_tuned_above[0] = (struct tuned_efficiency_point){.rows = 128, .tune_rows = 256, .compute = 0.3,
                                                                    .memory = 0.7};
    a.kernels.gemm_tuned_above[1] = (struct tuned_efficiency_point){.rows = 128, .tune_rows = 512, .compute = 0.2,
                                                                    .memory = 0.5};
    a.kernels.gemm_tuned_above[2] = (struct tuned_efficiency_point){.rows = 256, .tune_rows = 512, .compute = 0.5,
                                                                    .memory = 0.4};
    a.shared_compute.layers = (struct shared_slowdown_table){1, {{.rows = 128, .slowdown = 0.9}}};
    a.shared_compute.tuned_above = (struct shared_tuned_table){1, {{.rows = 128, .tune_rows = 512, .slowdown = 0.8}}};
    snprintf(a.shared_compute.source, sizeof a.shared_compute.source, "pairs");
    CHECK_EQ_INT(write_and_load(failures_, &a, &b), PB_OK);
    CHECK_EQ_INT(b.kernels.n_gemm_tuned_above, 3);
    CHECK_EQ_INT(b.kernels.gemm_tuned_above[2].rows, 256);
    CHECK_EQ_INT(b.kernels.gemm_tuned_above[2].tune_rows, 512);
    CHECK_NEAR(b.kernels.gemm_tuned_above[2].compute, 0.5, 1e-12);
    CHECK_NEAR(b.kernels.gemm_tuned_above[1].memory, 0.5, 1e-12);
    CHECK_EQ_INT(b.shared_compute.tuned_above.n, 1);
    CHECK_EQ_INT(b.shared_compute.tuned_above.point[0].tune_rows, 512);
    CHECK_NEAR(b.shared_compute.tuned_above.point[0].slowdown, 0.8, 1e-12);
    const struct kernel_profile *k = &b.kernels;
    CHECK_NEAR(gemm_efficiency_at(k, 128, 512, 1), 0.5, 1e-12);        /* the point of its tune rows */
    CHECK_NEAR(gemm_efficiency_at(k, 128, 256, 1), 0.7, 1e-12);        /* another part's tuning */
    CHECK_NEAR(gemm_efficiency_at(k, 64, 512, 0), 0.2, 1e-12);         /* below the points: the first */
    CHECK_NEAR(gemm_efficiency_at(k, sqrt(128.0 * 256), 512, 0), 0.35, 1e-12);
    /* between the last point and the tune rows: toward the gemm table's value at 512 */
    CHECK_NEAR(gemm_efficiency_at(k, sqrt(256.0 * 512), 512, 1), 0.5, 1e-12);
    CHECK_NEAR(gemm_efficiency_at(k, 128, 0, 1), 0.8, 0);               /* at its own rows: the gemm table */
    CHECK_NEAR(gemm_efficiency_at(k, 512, 512, 1), 0.6, 0);
    CHECK_NEAR(gemm_efficiency_at(k, 128, 384, 1), 0.8, 0);             /* no point of that tuning */
    CHECK_NEAR(shared_layer_slowdown_at(&b.shared_compute, 128, 512), 0.8, 1e-12);
    CHECK_NEAR(shared_layer_slowdown_at(&b.shared_compute, 128, 0), 0.9, 0);
    CHECK_NEAR(shared_layer_slowdown_at(&b.shared_compute, 128, 256), 0.9, 0);
    CHECK_NEAR(shared_layer_slowdown_at(&b.shared_compute, sqrt(128.0 * 512), 512), 0.85, 1e-12);
    /* refused on reading, by field: a point not below its tuning, or out of order */
    a.kernels.gemm_tuned_above[0].tune_rows = 128;
    CHECK_EQ_INT(device_profile_validate(&a, "x.json"), PB_ERR);
    CHECK(strstr(pb_last_error(), "x.json: kernels.gemm_tuned_above[0]") != NULL);
    a.kernels.gemm_tuned_above[0].tune_rows = 1024;
    CHECK_EQ_INT(device_profile_validate(&a, "x.json"), PB_ERR);
    a.kernels.gemm_tuned_above[0].tune_rows = 256;
    a.kernels.gemm_tuned_above[1].memory = 1.5;
    CHECK_EQ_INT(device_profile_validate(&a, "x.json"), PB_ERR);
    CHECK(strstr(pb_last_error(), "fractions") != NULL);
    const char *gemm = "[{\"rows\": 128, \"memory\": 0.8}]";
    CHECK_EQ_INT(parse_kernels_with(gemm, "\"gemm_tuned_above\": [{\"rows\": 128, \"tune_rows\": 64, "
                                    "\"memory\": 0.5}], ", &b), PB_ERR);
    CHECK(strstr(pb_last_error(), "k.json: kernels.gemm_tuned_above[0].tune_rows: 64 must be above rows 128") != NULL);
    CHECK_EQ_INT(parse_kernels_with(gemm, "\"gemm_tuned_above\": [{\"rows\": 256, \"tune_rows\": 512, "
                                    "\"memory\": 0.5}, {\"rows\": 128, \"tune_rows\": 512, \"memory\": 0.5}], ", &b),
                 PB_ERR);
    CHECK(strstr(pb_last_error(), "gemm_tuned_above[1]: points must rise by tune_rows, then rows") != NULL);
    CHECK_EQ_INT(parse_kernels_with(gemm, "\"gemm_tuned_above\": [{\"rows\": 128, \"tune_rows\": 512, "
                                    "\"memory\": 0.5}], ", &b), PB_OK);
    CHECK_NEAR(b.kernels.gemm_tuned_above[0].compute, 1, 0);   /* left out: only bandwidth binds */
}
