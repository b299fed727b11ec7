/* weightsync C API: the one stable boundary of libweightsync.so (C99 and later, C++).
 *
 * Conventions (every function below follows them):
 * - Errors. Every fallible call returns a ws_status; WS_OK (0) is success and every other value
 *   mirrors the library's StatusCode (weightsync/status.h) one to one. On failure the message
 *   (naming the tensor, rank, peer or option) is kept in two places: the calling thread's
 *   ws_last_error(), set by every failing call, including calls that fail before a handle exists;
 *   and the handle's own ws_*_last_error(), set by failing calls on that handle. Output
 *   parameters are written only on success. No C++ exception ever crosses this boundary: every
 *   entry point catches everything and reports WS_INTERNAL (or WS_RESOURCE_EXHAUSTED for
 *   std::bad_alloc).
 * - Ownership. ws_*_create / ws_store_start return a handle the caller owns and releases with the
 *   matching ws_*_destroy / ws_store_stop (NULL is accepted and ignored). A `const char*` returned
 *   by a function is owned by the library: the handle's strings live as long as the handle, the
 *   thread's error until that thread's next failing call, a handle's error until the next failing
 *   call on that handle. Tensor memory passed in (ws_tensor.data) is never copied or freed by the
 *   library: agents keep pointers into it (registered with the transport) until they are
 *   destroyed, so it must outlive the agent.
 * - Strings are UTF-8 and NUL-terminated. Variable-sized text is copied out with the
 *   (buf, size, needed) pattern: at most `size` bytes including the NUL are written, `*needed`
 *   (if not NULL) receives the full size including the NUL, and WS_OUT_OF_RANGE is returned when
 *   `size` is too small (buf then holds a truncated, NUL-terminated prefix when size > 0).
 * - Sizes are in bytes, counts are element or item counts, strides are in elements (as PyTorch),
 *   timeouts are seconds (double).
 * - Tensors are described by ws_tensor (name, data, dtype, shape, strides, device). Agents and
 *   conversions need contiguous row-major memory; a view that is not is refused, naming it.
 * - Options of agents and job plans are one JSON object (see WS_OPTIONS below); unknown keys are
 *   errors, so a misspelt option never silently falls back to a default.
 * - Threading. ws_store, ws_job_plan, ws_convert_plan and ws_tensor_list may be used from any
 *   thread at once. A ws_trainer is used from one thread at a time. A ws_inference's create,
 *   serve_one_push and destroy run on one thread; pause, resume, status_json and admin_address may
 *   be called from any thread meanwhile. ws_config_* must not race with other calls that read the
 *   configuration (creates).
 */
#ifndef WEIGHTSYNC_WEIGHTSYNC_H_
#define WEIGHTSYNC_WEIGHTSYNC_H_

#include <stddef.h>
#include <stdint.h>

#if defined(WS_BUILDING_LIBRARY)
#define WS_API __attribute__((visibility("default")))
#else
#define WS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a signature or struct layout changes incompatibly. */
#define WS_API_VERSION 1

typedef enum ws_status {
  WS_OK = 0,
  WS_INVALID_ARGUMENT = 1,
  WS_NOT_FOUND = 2,
  WS_ALREADY_EXISTS = 3,
  WS_OUT_OF_RANGE = 4,
  WS_FAILED_PRECONDITION = 5,
  WS_DATA_LOSS = 6,
  WS_DEADLINE_EXCEEDED = 7,
  WS_UNAVAILABLE = 8,
  WS_UNAUTHENTICATED = 9,
  WS_RESOURCE_EXHAUSTED = 10,
  WS_ABORTED = 11,
  WS_UNIMPLEMENTED = 12,
  WS_INTERNAL = 13
} ws_status;

/* Element types, numbered as weightsync::DType. */
typedef enum ws_dtype {
  WS_DTYPE_BOOL = 0,
  WS_DTYPE_U8 = 1,
  WS_DTYPE_I8 = 2,
  WS_DTYPE_I16 = 3,
  WS_DTYPE_U16 = 4,
  WS_DTYPE_I32 = 5,
  WS_DTYPE_U32 = 6,
  WS_DTYPE_I64 = 7,
  WS_DTYPE_U64 = 8,
  WS_DTYPE_F16 = 9,
  WS_DTYPE_BF16 = 10,
  WS_DTYPE_F32 = 11,
  WS_DTYPE_F64 = 12,
  WS_DTYPE_F8E4M3 = 13, /* float8_e4m3fn */
  WS_DTYPE_F8E5M2 = 14,
  WS_DTYPE_F8E8M0 = 15
} ws_dtype;

typedef enum ws_device_type { WS_DEVICE_CPU = 0, WS_DEVICE_CUDA = 1 } ws_device_type;

/* A view of one tensor. `data` may be NULL where only the description is needed (planning).
 * `strides` NULL means contiguous row-major. Tensors returned in a ws_tensor_list have data NULL
 * and strides NULL; their name and shape point into the list. */
typedef struct ws_tensor {
  const char* name;
  void* data;
  int32_t dtype; /* ws_dtype */
  int32_t ndim;  /* 0..8 */
  const int64_t* shape;
  const int64_t* strides; /* elements */
  int32_t device_type;    /* ws_device_type */
  int32_t device_index;   /* CUDA ordinal; 0 for the CPU */
} ws_tensor;

/* What one rank did in one push (agent/push_report.h). */
typedef struct ws_push_report {
  uint64_t step;
  int64_t bytes;        /* written into inference ranks (trainer) or received (inference) */
  int64_t writes;       /* one-sided writes posted (trainer) */
  int64_t gather_bytes; /* source bytes sent to other trainer ranks */
  int64_t units;        /* convert units converted (trainer) */
  double seconds;       /* the whole push on this rank */
  double convert_seconds;
} ws_push_report;

typedef struct ws_store ws_store;
typedef struct ws_trainer ws_trainer;
typedef struct ws_inference ws_inference;
typedef struct ws_job_plan ws_job_plan;
typedef struct ws_convert_plan ws_convert_plan;
typedef struct ws_tensor_list ws_tensor_list;

/* ---- library ---------------------------------------------------------------------------- */

WS_API const char* ws_version(void); /* "0.1.0" */
WS_API int32_t ws_api_version(void); /* WS_API_VERSION the library was built with */
WS_API const char* ws_status_name(ws_status status); /* "INVALID_ARGUMENT"; never NULL */
/* The message of this thread's last failing call ("" if none). */
WS_API const char* ws_last_error(void);
WS_API size_t ws_dtype_size(ws_dtype dtype); /* bytes per element; 0 for an unknown value */
/* This process's rank, world size and local rank as its launcher set them: torchrun (RANK,
 * WORLD_SIZE, LOCAL_RANK), Open MPI (OMPI_COMM_WORLD_*), SLURM (SLURM_PROCID, SLURM_NTASKS,
 * SLURM_LOCALID) or PMI, the first one present. WS_NOT_FOUND when none is; any pointer may be
 * NULL. */
WS_API ws_status ws_launcher_rank(int32_t* rank, int32_t* world_size, int32_t* local_rank);

/* ---- configuration (core/config.h: the table `weightsync info` prints) ------------------- */
/* A process-wide configuration every later create starts from: the defaults, WEIGHTSYNC_*
 * environment variables (read at the first use or at ws_config_reset) and ws_config_set. */

WS_API ws_status ws_config_set(const char* key, const char* value);
WS_API ws_status ws_config_get(const char* key, char* buf, size_t size, size_t* needed);
/* Back to the defaults overlaid with the environment as it is now. */
WS_API ws_status ws_config_reset(void);

/* ---- embedded store (control/store_server.h) --------------------------------------------- */

/* Starts the rendezvous store in this process. host NULL: "127.0.0.1" (loopback); port 0: an
 * ephemeral port; token NULL or "": a random 32-hex-digit token (read it with ws_store_token). */
WS_API ws_status ws_store_start(const char* host, uint16_t port, const char* token,
                                ws_store** out);
WS_API const char* ws_store_address(const ws_store* store); /* "127.0.0.1:PORT" */
WS_API const char* ws_store_token(const ws_store* store);
WS_API const char* ws_store_last_error(const ws_store* store);
/* Stops serving (waking every pending wait) and frees the handle. */
WS_API void ws_store_stop(ws_store* store);

/* ---- options -----------------------------------------------------------------------------
 * WS_OPTIONS: the JSON object agents and job plans take. Every rank of a job passes the same
 * model, formats and parallelism (the plan hash is compared when they join).
 *   "job_id":        string, default "weightsync"
 *   "store_address": "host:port" of the store (required for agents)
 *   "store_token":   the store's token (required for agents)
 *   "model":         model spec name or .json path; default: from the dims' model_type
 *   "spec_dirs":     [string], extra model spec directories
 *   "preset":        dimensions preset (glm5, glm5_tiny, deepseek_v3, ...), or
 *   "config_json":   path of a Hugging Face config.json (exactly one of the two)
 *   "source_format": default "torchtitan";  "target_format": default "vllm"
 *   "trainer":       trainer parallelism text, e.g. "fsdp=2,ep=1" (default "fsdp=1")
 *   "inference":     inference parallelism text, e.g. "tp=1,dp=2,ep=2" (default "tp=1")
 *   "transport":     auto | ucx | cuda_ipc | local (default: agent.transport)
 *   "config":        {"push.transfer_timeout": "30s", ...}: configuration table entries for this
 *                    agent only, over the process-wide configuration (timeouts, staging, threads)
 * Inference agents also take:
 *   "admin_token":   serve the HTTP admin endpoint with this token ("" or absent: no endpoint)
 *   "admin_listen":  "host:port" of that endpoint, default "127.0.0.1:0"
 *   "expert_map":    [int], the global expert ids this rank holds in local order (checked)
 */

/* ---- lists of tensor descriptions ---------------------------------------------------------- */

WS_API size_t ws_tensor_list_size(const ws_tensor_list* list);
/* Describes item `index` (data NULL); pointers inside stay valid until the list is destroyed. */
WS_API ws_status ws_tensor_list_get(const ws_tensor_list* list, size_t index, ws_tensor* out);
WS_API void ws_tensor_list_destroy(ws_tensor_list* list);

/* ---- job plan (agent/job_plan.h): what every rank must hold, so callers can allocate it ----- */

WS_API ws_status ws_job_plan_create(const char* options_json, ws_job_plan** out);
WS_API const char* ws_job_plan_hash(const ws_job_plan* plan); /* hex; as ranks compare it */
WS_API int32_t ws_job_plan_trainer_world(const ws_job_plan* plan);
WS_API int32_t ws_job_plan_inference_world(const ws_job_plan* plan);
/* The source shards trainer rank `rank` passes to ws_trainer_create (local shapes). */
WS_API ws_status ws_job_plan_trainer_sources(const ws_job_plan* plan, int32_t rank,
                                             ws_tensor_list** out);
/* Where trainer rank `rank`'s source shards lie in their full tensors, along dim 0 (rows, or the
 * experts of a [E, rows, cols] stack): item i of ws_job_plan_trainer_sources(rank) is
 * [first[i], first[i] + its dim 0) of total[i]. `count` must be that list's size. Ranks follow
 * torchtitan's order, so with expert parallelism a stack's shards are not in rank order
 * (docs/plan.md). */
WS_API ws_status ws_job_plan_trainer_source_rows(const ws_job_plan* plan, int32_t rank,
                                                 int64_t* first, int64_t* total, size_t count);
/* The destination tensors (weights and FP8 scales) inference rank `rank` registers. */
WS_API ws_status ws_job_plan_inference_destinations(const ws_job_plan* plan, int32_t rank,
                                                    ws_tensor_list** out);
WS_API const char* ws_job_plan_last_error(const ws_job_plan* plan);
WS_API void ws_job_plan_destroy(ws_job_plan* plan);

/* ---- in-memory conversion (the bytes `weightsync convert` writes, in CPU memory) ------------- */

#define WS_CONVERT_PARTIAL 1u /* the sources are part of a model (some layers, a shard) */

/* Plans the conversion of `sources` (names, dtypes and shapes; data may be NULL) from
 * `source_format` into `target_format` of model spec `model` (name or .json path). */
WS_API ws_status ws_convert_plan_create(const char* model, const char* source_format,
                                        const char* target_format, const ws_tensor* sources,
                                        size_t source_count, uint32_t flags,
                                        ws_convert_plan** out);
/* Every destination tensor (FP8 scales included) the conversion writes, in plan order. */
WS_API ws_status ws_convert_plan_destinations(const ws_convert_plan* plan, ws_tensor_list** out);
/* Converts: `sources` must be the planned tensors (same names, dtypes, shapes; data set,
 * contiguous, CPU) and `destinations` every planned destination, CPU, contiguous. threads 0:
 * convert.threads. On an error the destinations may be partly written. */
WS_API ws_status ws_convert_tensors(const ws_convert_plan* plan, const ws_tensor* sources,
                                    size_t source_count, const ws_tensor* destinations,
                                    size_t destination_count, int32_t threads);
WS_API const char* ws_convert_plan_last_error(const ws_convert_plan* plan);
WS_API void ws_convert_plan_destroy(ws_convert_plan* plan);

/* ---- trainer agent (agent/trainer_agent.h) ------------------------------------------------- */

/* Joins the job as trainer rank `rank` with this rank's source shards (see
 * ws_job_plan_trainer_sources); blocks until every rank of the job has joined. */
WS_API ws_status ws_trainer_create(const char* options_json, int32_t rank,
                                   const ws_tensor* sources, size_t source_count,
                                   ws_trainer** out);
/* Pushes what the source memory holds now as `step` (strictly increasing); report may be NULL. */
WS_API ws_status ws_trainer_push(ws_trainer* trainer, uint64_t step, ws_push_report* report);
WS_API const char* ws_trainer_describe(const ws_trainer* trainer);
WS_API const char* ws_trainer_last_error(const ws_trainer* trainer);
WS_API void ws_trainer_destroy(ws_trainer* trainer);

/* ---- inference agent (agent/inference_agent.h) --------------------------------------------- */

/* A hook returns 0 on success; anything else fails the push (the rank is then torn). A failing
 * hook may first call ws_hook_fail with the cause. */
typedef int32_t (*ws_hook_fn)(void* user_data);
/* Called by a hook, on the thread running it, before it returns non-zero: `message` (an
 * exception's type and text, say) becomes the push's error on every rank and in /status, instead
 * of "the post_update hook returned 1". */
WS_API void ws_hook_fail(const char* message);
typedef struct ws_inference_hooks {
  ws_hook_fn pause;       /* stop serving requests; NULL: nothing to do */
  ws_hook_fn post_update; /* after the bytes arrived, before commit (derived weights) */
  ws_hook_fn resume;      /* serve again */
  void* user_data;
} ws_inference_hooks;

/* Registers `destinations` (see ws_job_plan_inference_destinations) and joins the job as
 * inference rank `rank` (replica * ranks + local rank); hooks may be NULL. Hooks run on the
 * thread calling ws_inference_serve_one_push (pause/resume also on ws_inference_pause/resume's). */
WS_API ws_status ws_inference_create(const char* options_json, int32_t rank,
                                     const ws_tensor* destinations, size_t destination_count,
                                     const ws_inference_hooks* hooks, ws_inference** out);
/* Waits up to timeout_s for a push and serves it. *served is 1 when one was served (report
 * filled if not NULL), 0 when none came within the timeout (WS_OK). */
WS_API ws_status ws_inference_serve_one_push(ws_inference* inference, double timeout_s,
                                             ws_push_report* report, int32_t* served);
WS_API ws_status ws_inference_pause(ws_inference* inference);
WS_API ws_status ws_inference_resume(ws_inference* inference, int32_t force);
/* The status document of the admin endpoint's /status (state, steps, torn, last error). */
WS_API ws_status ws_inference_status_json(ws_inference* inference, char* buf, size_t size,
                                          size_t* needed);
/* "host:port" of the admin endpoint, "" without one. */
WS_API const char* ws_inference_admin_address(const ws_inference* inference);
WS_API const char* ws_inference_last_error(const ws_inference* inference);
WS_API void ws_inference_destroy(ws_inference* inference);

#ifdef __cplusplus
}
#endif

#endif /* WEIGHTSYNC_WEIGHTSYNC_H_ */
