/* The C API from C11: version, errors, configuration, the embedded store, job plan info and an
 * in-memory conversion, plus the error paths (bad options, bad rank, wrong dtype, NULL). Exits 0
 * only if every check passed; each failure prints what differed. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weightsync/weightsync.h"

static int failures = 0;

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, \
              __LINE__, #cond, ws_last_error());                              \
      ++failures;                                                             \
    }                                                                         \
  } while (0)

static const char* kPlanOptions =
    "{\"model\": \"glm_moe_dsa\", \"preset\": \"glm5_tiny\", \"source_format\": \"hf\","
    " \"trainer\": \"fsdp=2\", \"inference\": \"tp=1\"}";

static void test_library(void) {
  CHECK(strcmp(ws_version(), "") != 0);
  CHECK(ws_api_version() == WS_API_VERSION);
  CHECK(strcmp(ws_status_name(WS_INVALID_ARGUMENT), "INVALID_ARGUMENT") == 0);
  CHECK(strcmp(ws_status_name((ws_status)99), "UNKNOWN") == 0);
  CHECK(ws_dtype_size(WS_DTYPE_BF16) == 2 && ws_dtype_size(WS_DTYPE_F8E4M3) == 1);
  CHECK(ws_dtype_size((ws_dtype)77) == 0);
  /* Ranks from a launcher's environment (torchrun's variables here). */
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  int32_t rank = -1, world = -1, local = -1;
  CHECK(ws_launcher_rank(&rank, &world, &local) == WS_OK && rank == 1 && world == 4 && local == 1);
  setenv("RANK", "9", 1);
  CHECK(ws_launcher_rank(&rank, NULL, NULL) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "RANK=9") != NULL);
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  unsetenv("LOCAL_RANK");
}

static void test_config(void) {
  char buf[64];
  size_t needed = 0;
  CHECK(ws_config_set("convert.threads", "2") == WS_OK);
  CHECK(ws_config_get("convert.threads", buf, sizeof buf, &needed) == WS_OK);
  CHECK(strcmp(buf, "2") == 0 && needed == 2);
  /* Too small a buffer: OUT_OF_RANGE, a truncated string and the size needed. */
  CHECK(ws_config_get("convert.threads", buf, 1, &needed) == WS_OUT_OF_RANGE);
  CHECK(buf[0] == '\0' && needed == 2);
  CHECK(ws_config_set("no.such.option", "1") != WS_OK);
  CHECK(strstr(ws_last_error(), "no.such.option") != NULL);
  CHECK(ws_config_get("no.such.option", buf, sizeof buf, NULL) == WS_NOT_FOUND);
  CHECK(ws_config_set("convert.threads", NULL) == WS_INVALID_ARGUMENT);
  CHECK(ws_config_reset() == WS_OK);
}

static void test_store(void) {
  ws_store* store = NULL;
  CHECK(ws_store_start(NULL, 0, NULL, &store) == WS_OK);
  if (store == NULL) return;
  CHECK(strncmp(ws_store_address(store), "127.0.0.1:", 10) == 0);
  CHECK(strlen(ws_store_token(store)) == 32);
  ws_store_stop(store);
  ws_store_stop(NULL); /* accepted */
  CHECK(ws_store_start(NULL, 0, NULL, NULL) == WS_INVALID_ARGUMENT);
}

static void test_job_plan(void) {
  ws_job_plan* plan = NULL;
  CHECK(ws_job_plan_create(kPlanOptions, &plan) == WS_OK);
  if (plan == NULL) return;
  CHECK(strlen(ws_job_plan_hash(plan)) > 0);
  CHECK(ws_job_plan_trainer_world(plan) == 2);
  CHECK(ws_job_plan_inference_world(plan) == 1);

  /* The two trainer ranks split dim 0 of every source between them. */
  ws_tensor_list* rank0 = NULL;
  ws_tensor_list* rank1 = NULL;
  CHECK(ws_job_plan_trainer_sources(plan, 0, &rank0) == WS_OK);
  CHECK(ws_job_plan_trainer_sources(plan, 1, &rank1) == WS_OK);
  CHECK(ws_tensor_list_size(rank0) > 10 && ws_tensor_list_size(rank0) == ws_tensor_list_size(rank1));
  /* Where each shard lies: rank 0 from row 0, rank 1 right after it, both of the full rows. */
  const size_t count = rank0 ? ws_tensor_list_size(rank0) : 0;
  int64_t* first0 = calloc(count + 1, sizeof(int64_t));
  int64_t* first1 = calloc(count + 1, sizeof(int64_t));
  int64_t* total = calloc(count + 1, sizeof(int64_t));
  CHECK(ws_job_plan_trainer_source_rows(plan, 0, first0, total, count) == WS_OK);
  CHECK(ws_job_plan_trainer_source_rows(plan, 1, first1, total, count) == WS_OK);
  int found_embed = 0;
  for (size_t i = 0; rank0 && rank1 && i < count; ++i) {
    ws_tensor a, b;
    CHECK(ws_tensor_list_get(rank0, i, &a) == WS_OK && ws_tensor_list_get(rank1, i, &b) == WS_OK);
    CHECK(strcmp(a.name, b.name) == 0 && a.data == NULL && a.ndim >= 1);
    CHECK(first0[i] == 0 && first1[i] == a.shape[0] && total[i] == a.shape[0] + b.shape[0]);
    if (strcmp(a.name, "model.embed_tokens.weight") == 0) {
      found_embed = 1;
      CHECK(a.dtype == WS_DTYPE_BF16 && a.ndim == 2 && a.shape[1] == b.shape[1]);
      /* torch.chunk: rank 0 holds ceil(vocab / 2) rows. */
      CHECK(a.shape[0] >= b.shape[0] && a.shape[0] - b.shape[0] <= 1);
    }
  }
  CHECK(found_embed);
  /* A count that is not the list's size is refused, naming the rank. */
  CHECK(ws_job_plan_trainer_source_rows(plan, 1, first1, total, count + 1) ==
        WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "trainer rank 1") != NULL);
  free(first0);
  free(first1);
  free(total);
  ws_tensor dummy;
  CHECK(ws_tensor_list_get(rank0, 1u << 30, &dummy) == WS_OUT_OF_RANGE);
  ws_tensor_list_destroy(rank0);
  ws_tensor_list_destroy(rank1);

  ws_tensor_list* dest = NULL;
  CHECK(ws_job_plan_inference_destinations(plan, 0, &dest) == WS_OK);
  int fp8 = 0, scales = 0;
  for (size_t i = 0; dest && i < ws_tensor_list_size(dest); ++i) {
    ws_tensor t;
    CHECK(ws_tensor_list_get(dest, i, &t) == WS_OK);
    fp8 += t.dtype == WS_DTYPE_F8E4M3;
    scales += strstr(t.name, "_scale_inv") != NULL && t.dtype == WS_DTYPE_F32;
  }
  CHECK(fp8 > 0 && fp8 == scales);
  ws_tensor_list_destroy(dest);

  /* Ranks out of range: errors naming the rank, on the handle and the thread. */
  ws_tensor_list* none = NULL;
  CHECK(ws_job_plan_trainer_sources(plan, 2, &none) == WS_INVALID_ARGUMENT && none == NULL);
  CHECK(strstr(ws_job_plan_last_error(plan), "trainer rank 2") != NULL);
  CHECK(ws_job_plan_inference_destinations(plan, -1, &none) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "inference rank -1") != NULL);
  ws_job_plan_destroy(plan);

  /* Bad options fail before a handle exists; the thread's error says why. */
  CHECK(ws_job_plan_create("{\"preset\": \"glm5_tiny\", \"trainr\": \"fsdp=2\"}", &plan) ==
        WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "trainr") != NULL);
  CHECK(ws_job_plan_create("not json", &plan) == WS_INVALID_ARGUMENT);
  CHECK(ws_job_plan_create("{\"preset\": \"no_such_preset\"}", &plan) == WS_NOT_FOUND);
  CHECK(ws_job_plan_create("{\"preset\": \"glm5_tiny\", \"trainer\": \"fsdp=0\"}", &plan) ==
        WS_INVALID_ARGUMENT);
  CHECK(ws_job_plan_create(NULL, &plan) == WS_INVALID_ARGUMENT);
}

/* One bf16 source of all-ones into an FP8 destination: amax 1 -> scale 1/448, every value 448
 * (e4m3fn 0x7E); and an fp32 copy. */
static void test_convert(void) {
  enum { kRows = 64, kCols = 320 };
  static uint16_t wk[kRows * kCols];
  static float norm[64];
  for (int i = 0; i < kRows * kCols; ++i) wk[i] = 0x3F80; /* bf16 1.0 */
  for (int i = 0; i < 64; ++i) norm[i] = (float)i * 0.25f - 3.0f;
  const int64_t wk_shape[2] = {kRows, kCols};
  const int64_t norm_shape[1] = {64};
  ws_tensor sources[2] = {
      {"model.layers.0.self_attn.indexer.wk.weight", wk, WS_DTYPE_BF16, 2, wk_shape, NULL,
       WS_DEVICE_CPU, 0},
      {"model.layers.0.self_attn.indexer.k_norm.weight", norm, WS_DTYPE_F32, 1, norm_shape, NULL,
       WS_DEVICE_CPU, 0}};
  ws_convert_plan* plan = NULL;
  CHECK(ws_convert_plan_create("glm_moe_dsa", "hf", "vllm", sources, 2, WS_CONVERT_PARTIAL,
                               &plan) == WS_OK);
  if (plan == NULL) return;
  ws_tensor_list* list = NULL;
  CHECK(ws_convert_plan_destinations(plan, &list) == WS_OK);
  CHECK(ws_tensor_list_size(list) == 3);
  ws_tensor_list_destroy(list);

  static uint8_t q[kRows * kCols];
  static float scale[3];
  static float norm_out[64];
  const int64_t scale_shape[2] = {1, 3};
  ws_tensor dests[3] = {
      {"model.layers.0.self_attn.indexer.wk.weight", q, WS_DTYPE_F8E4M3, 2, wk_shape, NULL,
       WS_DEVICE_CPU, 0},
      {"model.layers.0.self_attn.indexer.wk.weight_scale_inv", scale, WS_DTYPE_F32, 2, scale_shape,
       NULL, WS_DEVICE_CPU, 0},
      {"model.layers.0.self_attn.indexer.k_norm.weight", norm_out, WS_DTYPE_F32, 1, norm_shape,
       NULL, WS_DEVICE_CPU, 0}};
  CHECK(ws_convert_tensors(plan, sources, 2, dests, 3, 1) == WS_OK);
  int bad = 0;
  for (int i = 0; i < kRows * kCols; ++i) bad += q[i] != 0x7E;
  CHECK(bad == 0);
  for (int i = 0; i < 3; ++i) CHECK(scale[i] == 1.0f / 448.0f);
  CHECK(memcmp(norm, norm_out, sizeof norm) == 0);

  /* A destination of the wrong dtype is refused before anything is written, naming it. */
  dests[2].dtype = WS_DTYPE_BF16;
  CHECK(ws_convert_tensors(plan, sources, 2, dests, 3, 1) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_convert_plan_last_error(plan), "indexer.k_norm.weight") != NULL);
  dests[2].dtype = WS_DTYPE_F32;
  /* A missing destination and a source of another shape, each named. */
  CHECK(ws_convert_tensors(plan, sources, 2, dests, 2, 1) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "k_norm.weight") != NULL);
  const int64_t other_shape[1] = {32};
  sources[1].shape = other_shape;
  CHECK(ws_convert_tensors(plan, sources, 2, dests, 3, 1) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "k_norm.weight") != NULL);
  sources[1].shape = norm_shape;
  /* A NULL data pointer. */
  sources[0].data = NULL;
  CHECK(ws_convert_tensors(plan, sources, 2, dests, 3, 1) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "data is NULL") != NULL);
  sources[0].data = wk;
  ws_convert_plan_destroy(plan);

  /* A source no rule consumes. */
  sources[1].name = "model.layers.0.no_such.weight";
  CHECK(ws_convert_plan_create("glm_moe_dsa", "hf", "vllm", sources, 2, WS_CONVERT_PARTIAL,
                               &plan) != WS_OK);
  CHECK(strstr(ws_last_error(), "no_such") != NULL);
}

static void test_agent_errors(void) {
  ws_trainer* trainer = NULL;
  /* No store: refused before joining anything. */
  CHECK(ws_trainer_create(kPlanOptions, 0, NULL, 0, &trainer) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "store_address") != NULL);
  ws_inference* inference = NULL;
  CHECK(ws_inference_create("{\"preset\": \"glm5_tiny\", \"admin_tokn\": \"x\"}", 0, NULL, 0, NULL,
                            &inference) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "admin_tokn") != NULL);
  /* One options object for every rank: inference-only keys are accepted (and ignored) by trainers
   * and plans; this trainer is refused for its missing store, not for admin_token. */
  CHECK(ws_trainer_create("{\"preset\": \"glm5_tiny\", \"admin_token\": \"x\"}", 0, NULL, 0,
                          &trainer) == WS_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "store_address") != NULL);
  ws_job_plan* plan = NULL;
  CHECK(ws_job_plan_create("{\"preset\": \"glm5_tiny\", \"admin_token\": \"x\", "
                           "\"admin_listen\": \"127.0.0.1:0\"}",
                           &plan) == WS_OK);
  ws_job_plan_destroy(plan);
  CHECK(ws_trainer_push(NULL, 1, NULL) == WS_INVALID_ARGUMENT);
  CHECK(ws_inference_pause(NULL) == WS_INVALID_ARGUMENT);
  ws_trainer_destroy(NULL);
  ws_inference_destroy(NULL);
}

int main(void) {
  test_library();
  test_config();
  test_store();
  test_job_plan();
  test_convert();
  test_agent_errors();
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("all C API checks passed\n");
  return 0;
}
