/* --model DIR where DIR is what save_pretrained writes (config.json and
 * *.safetensors): its config is read, results are named after the folder, and its
 * safetensors are the measured run's weights unless --weights says otherwise. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>
#include "../base/check.h"
#include "../harness/cli/cli.h"
#include "../harness/run/run_common.h"
#include "../base/text_file.h"
#include "safetensors_write.h"
#include "test.h"

static char out[65536];

/* dir/name/config.json copied from models/llama-tiny.json; with_weights adds a
 * one-tensor model.safetensors (headers are all a run checks before the GPUs). */
static void make_model_folder(char *folder, size_t len, const char *name, int with_weights)
{
    char dir[256], path[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(folder, len, "%s/%s", dir, name);
    snprintf(path, sizeof path, "mkdir -p '%s' && cp models/llama-tiny.json '%s/config.json'", folder, folder);
    if (system(path) != 0) fprintf(stderr, "  could not make %s\n", folder);
    if (!with_weights) return;
    uint16_t w[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    struct st_out_tensor t = {"model.norm.weight", "BF16", 1, {4, 0}, w, sizeof w};
    snprintf(path, sizeof path, "%s/model.safetensors", folder);
    if (st_write_file(path, &t, 1) != 0) fprintf(stderr, "  could not write %s\n", path);
}

static int parse(struct options *o, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {"bench", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    int argc = 1;
    while (argv[argc]) argc++;
    return cli_parse(argc, argv, o);
}

TEST(test_model_name_is_the_file_or_the_model_folder)
{
    char name[128];
    model_name_from_path("models/llama-2-7b.json", name, sizeof name);
    CHECK(!strcmp(name, "llama-2-7b"));
    model_name_from_path("ckpt/Llama-2-7b-hf/config.json", name, sizeof name);
    CHECK(!strcmp(name, "Llama-2-7b-hf"));
    model_name_from_path("Llama-2-7b-hf//config.json", name, sizeof name);
    CHECK(!strcmp(name, "Llama-2-7b-hf"));
    model_name_from_path("config.json", name, sizeof name);
    CHECK(!strcmp(name, "config"));
}

TEST(test_model_folder_is_read_and_its_plan_named_after_the_folder)
{
    char folder[512], args[1200], path[700];
    make_model_folder(folder, sizeof folder, "TinyLlama-test-hf", 0);
    snprintf(args, sizeof args, "--model %s/ --strategy single --gpus 1 --plan --out %s/../r", folder, folder);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    CHECK(strstr(out, "plan: TinyLlama-test-hf on 1 GPU") != NULL);
    snprintf(path, sizeof path, "%s/../r/plan.json", folder);
    char *text = text_file_read(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(root != NULL);
    const cJSON *name = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "name");
    CHECK(cJSON_IsString(name) && !strcmp(name->valuestring, "TinyLlama-test-hf"));
    cJSON_Delete(root);
}

TEST(test_model_folder_names_the_default_results_folder)
{
    char folder[512], cwd[1024], cmd[2200];
    make_model_folder(folder, sizeof folder, "Tiny-Results-hf", 0);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    /* run from the folder's parent, so results/ lands there and not in the checkout */
    const char *bench = bench_binary();
    snprintf(cmd, sizeof cmd, "cd '%s/..' && '%s%s%s' --model Tiny-Results-hf --strategy single --gpus 1 "
             "--gpu-profile '%s/profiles/h200.json' --plan && ls results", folder, bench[0] == '/' ? "" : cwd,
             bench[0] == '/' ? "" : "/", bench, cwd);
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "-Tiny-Results-hf-plan\n") != NULL);   /* results/<date>-<time>-<model>-plan */
}

TEST(test_model_folder_without_config_exits_2_naming_the_file)
{
    char dir[256], args[700];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model %s --plan --out %s/r", dir, dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "config.json: cannot read") != NULL);
}

TEST(test_model_folder_safetensors_are_the_default_weights)
{
    char folder[512];
    make_model_folder(folder, sizeof folder, "tiny-with-weights", 1);
    struct options o;
    struct model_spec m;
    CHECK_EQ_INT(parse(&o, "--model", folder, NULL, NULL), CLI_OK);
    CHECK_EQ_INT(cli_load_model(&o, &m), PB_OK);
    CHECK(o.weights && !strcmp(o.weights, folder));
    char said[1200];
    run_weights_describe(&o, said, sizeof said);
    CHECK(!strncmp(said, "safetensors from ", 17) && strstr(said, "tiny-with-weights"));
    struct run_env env;
    memset(&env, 0, sizeof env);
    run_env_weights(&env, &o);
    CHECK(!strcmp(env.weights, "safetensors") && !strcmp(env.weights_dir, folder));

    /* --weights random opts out; a folder without safetensors runs on random weights */
    CHECK_EQ_INT(parse(&o, "--model", folder, "--weights", "random"), CLI_OK);
    CHECK_EQ_INT(cli_load_model(&o, &m), PB_OK);
    CHECK(o.weights == NULL);
    run_weights_describe(&o, said, sizeof said);
    CHECK(!strcmp(said, "random (seed 1234)"));
    run_env_weights(&env, &o);
    CHECK(!strcmp(env.weights, "random") && env.seed == 1234);
    char bare[512];
    make_model_folder(bare, sizeof bare, "tiny-config-only", 0);
    CHECK_EQ_INT(parse(&o, "--model", bare, NULL, NULL), CLI_OK);
    CHECK_EQ_INT(cli_load_model(&o, &m), PB_OK);
    CHECK(o.weights == NULL);
}

TEST(test_broken_safetensors_in_a_model_folder_is_bad_input_before_any_gpu_work)
{
    char folder[512], path[600];
    make_model_folder(folder, sizeof folder, "tiny-broken", 0);
    snprintf(path, sizeof path, "%s/model.safetensors", folder);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("not a safetensors file", f);
        fclose(f);
    }
    struct options o;
    struct model_spec m;
    CHECK_EQ_INT(parse(&o, "--model", folder, NULL, NULL), CLI_OK);
    CHECK_EQ_INT(cli_load_model(&o, &m), PB_ERR);
    CHECK(strstr(pb_last_error(), "model.safetensors") && strstr(pb_last_error(), "--weights random"));
    /* --plan and --simulate never read the weights */
    CHECK_EQ_INT(parse(&o, "--model", folder, "--plan", NULL), CLI_OK);
    CHECK_EQ_INT(cli_load_model(&o, &m), PB_OK);
}
