/* --max-memory means what from_pretrained(max_memory=...) means. */
#include <stdint.h>
#include "test.h"
#include "../harness/cli/memory_budget.h"

static uint64_t size_of(const char *text)
{
    uint64_t bytes = 0;
    return memory_size_parse(text, &bytes) == 0 ? bytes : UINT64_MAX;
}

TEST(test_memory_size_binary_units_are_powers_of_two)
{
    CHECK_EQ_INT(size_of("80GiB"), 80ULL << 30);
    CHECK_EQ_INT(size_of("512MiB"), 512ULL << 20);
    CHECK_EQ_INT(size_of("4KiB"), 4096);
    CHECK_EQ_INT(size_of("1.5GiB"), 3ULL << 29);
    CHECK_EQ_INT(size_of("80 GiB"), 80ULL << 30);
}

TEST(test_memory_size_decimal_units_are_powers_of_ten)
{
    CHECK_EQ_INT(size_of("10GB"), 10000000000ULL);
    CHECK_EQ_INT(size_of("5MB"), 5000000);
    CHECK_EQ_INT(size_of("3KB"), 3000);
    CHECK_EQ_INT(size_of("0.5GB"), 500000000);
}

TEST(test_memory_size_units_ignore_case_like_accelerate)
{
    CHECK_EQ_INT(size_of("80gib"), 80ULL << 30);
    CHECK_EQ_INT(size_of("80GIB"), 80ULL << 30);
    CHECK_EQ_INT(size_of("10gB"), 10000000000ULL);
}

/* accelerate reads a decimal unit ending in lowercase "b" as bits. */
TEST(test_memory_size_lowercase_b_means_bits_like_accelerate)
{
    CHECK_EQ_INT(size_of("10gb"), 1250000000ULL);
    CHECK_EQ_INT(size_of("10Gb"), 1250000000ULL);
    CHECK_EQ_INT(size_of("8mb"), 1000000);
    CHECK_EQ_INT(size_of("10gib"), 10ULL << 30); /* binary units have no bit form */
}

TEST(test_memory_size_accepts_plain_bytes)
{
    CHECK_EQ_INT(size_of("151397597184"), 151397597184ULL);
    CHECK_EQ_INT(size_of("0"), 0);
}

TEST(test_memory_size_rejects_what_accelerate_rejects)
{
    const char *bad[] = {"", "GiB", "80G", "80TB", "-1GB", "1.5", "abcGB", "0x10GB", "infGB", "80 GiB x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t bytes;
        CHECK(memory_size_parse(bad[i], &bytes) != 0);
    }
}

TEST(test_memory_budget_fills_gpus_and_cpu)
{
    struct machine mc = {.gpus = 2};
    mc.gpu_memory[5] = 123; /* a stale budget is cleared */
    CHECK_EQ_INT(memory_budget_parse("0=80GiB,1=70GiB,cpu=512GiB", &mc), 0);
    CHECK_EQ_INT(mc.gpu_memory[0], 80ULL << 30);
    CHECK_EQ_INT(mc.gpu_memory[1], 70ULL << 30);
    CHECK_EQ_INT(mc.gpu_memory[5], 0);
    CHECK_EQ_INT(mc.cpu_memory, 512ULL << 30);
    CHECK_EQ_INT(mc.budgets_from_user, 1);
    CHECK_EQ_INT(memory_budget_check_gpus(&mc, 2), 0);
}

TEST(test_memory_budget_tolerates_blanks_around_entries)
{
    struct machine mc = {0};
    CHECK_EQ_INT(memory_budget_parse(" 0 = 24GiB , cpu=1000 ", &mc), 0);
    CHECK_EQ_INT(mc.gpu_memory[0], 24ULL << 30);
    CHECK_EQ_INT(mc.cpu_memory, 1000);
}

TEST(test_memory_budget_leaves_unnamed_devices_without_budget)
{
    struct machine mc = {0};
    CHECK_EQ_INT(memory_budget_parse("1=10GB", &mc), 0);
    CHECK_EQ_INT(mc.gpu_memory[0], 0);
    CHECK_EQ_INT(mc.gpu_memory[1], 10000000000ULL);
    CHECK_EQ_INT(mc.cpu_memory, 0);
}

TEST(test_memory_budget_rejects_bad_entries)
{
    const char *bad[] = {"", "0=80GiB,", "0=80GiB,,cpu=1GB", "0", "0=80XB", "gpu0=80GiB", "disk=1TB",
                         "0=1GB,0=2GB", "cpu=1GB,cpu=2GB", "64=1GB", "-1=1GB", "=1GB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct machine mc = {0};
        CHECK(memory_budget_parse(bad[i], &mc) != 0);
    }
}

TEST(test_memory_budget_rejects_a_gpu_beyond_gpus)
{
    struct machine mc = {0};
    CHECK_EQ_INT(memory_budget_parse("0=1GB,3=1GB", &mc), 0);
    CHECK(memory_budget_check_gpus(&mc, 2) != 0);
    CHECK_EQ_INT(memory_budget_check_gpus(&mc, 4), 0);
}
