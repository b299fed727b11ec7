// Trainer and inference agents as C handles.
#include <utility>

#include "agent/trainer_agent.h"
#include "capi/capi_internal.h"

struct ws_trainer {
  weightsync::capi::ErrorSlot error;
  std::unique_ptr<weightsync::agent::TrainerAgent> agent;
  std::string description;
};

struct ws_inference {
  weightsync::capi::ErrorSlot error;
  std::unique_ptr<weightsync::agent::InferenceAgent> agent;
  std::string admin_address;
};

using namespace weightsync;  // NOLINT: the C entry points below only

namespace {

Status NeedStore(const agent::AgentOptions& options) {
  if (options.store.address.empty() || options.store.token.empty()) {
    return InvalidArgument("options: an agent needs \"store_address\" and \"store_token\"");
  }
  return Status::Ok();
}

void FillReport(const agent::PushReport& from, ws_push_report* to) {
  if (to == nullptr) return;
  *to = ws_push_report{from.step,  from.bytes,   from.writes,         from.gather_bytes,
                       from.units, from.seconds, from.convert_seconds};
}

// What the running hook passed to ws_hook_fail; hooks run on the thread that calls them.
thread_local std::string hook_failure;

// A C hook as an agent hook; `what` names it in the error when it returns non-zero, with the
// cause the hook gave through ws_hook_fail.
std::function<Status()> HookOf(ws_hook_fn fn, void* user_data, const char* what) {
  if (fn == nullptr) return nullptr;
  return [fn, user_data, what]() -> Status {
    hook_failure.clear();
    const int32_t rc = fn(user_data);
    if (rc == 0) return Status::Ok();
    std::string cause = std::exchange(hook_failure, {});
    if (cause.empty()) return Aborted("the ", what, " hook returned ", rc);
    return Aborted("the ", what, " hook failed: ", cause);
  };
}

}  // namespace

extern "C" {

WS_API void ws_hook_fail(const char* message) { hook_failure = message ? message : ""; }

WS_API ws_status ws_trainer_create(const char* options_json, int32_t rank, const ws_tensor* sources,
                                   size_t source_count, ws_trainer** out) {
  return capi::Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_ASSIGN_OR_RETURN(capi::ParsedOptions options, capi::ParseOptions(options_json, false));
    WS_RETURN_IF_ERROR(NeedStore(options.agent));
    const std::string what = StrCat("trainer ", rank, ": source");
    WS_ASSIGN_OR_RETURN(auto views, capi::ViewsOf(sources, source_count, what, true));
    auto trainer = std::make_unique<ws_trainer>();
    WS_ASSIGN_OR_RETURN(trainer->agent,
                        agent::TrainerAgent::Create(options.agent, rank, std::move(views)));
    trainer->description = trainer->agent->Describe();
    *out = trainer.release();
    return Status::Ok();
  });
}

WS_API ws_status ws_trainer_push(ws_trainer* trainer, uint64_t step, ws_push_report* report) {
  return capi::Guard(trainer ? &trainer->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(trainer, "trainer"));
    WS_ASSIGN_OR_RETURN(agent::PushReport r, trainer->agent->Push(step));
    FillReport(r, report);
    return Status::Ok();
  });
}

WS_API const char* ws_trainer_describe(const ws_trainer* trainer) {
  return trainer == nullptr ? "" : trainer->description.c_str();
}
WS_API const char* ws_trainer_last_error(const ws_trainer* trainer) {
  return trainer == nullptr ? "" : trainer->error.Get();
}
WS_API void ws_trainer_destroy(ws_trainer* trainer) { delete trainer; }

WS_API ws_status ws_inference_create(const char* options_json, int32_t rank,
                                     const ws_tensor* destinations, size_t destination_count,
                                     const ws_inference_hooks* hooks, ws_inference** out) {
  return capi::Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_ASSIGN_OR_RETURN(capi::ParsedOptions options, capi::ParseOptions(options_json, true));
    WS_RETURN_IF_ERROR(NeedStore(options.agent));
    const std::string what = StrCat("inference ", rank, ": destination");
    WS_ASSIGN_OR_RETURN(auto views, capi::ViewsOf(destinations, destination_count, what, true));
    if (hooks != nullptr) {
      push::InferenceHooks& h = options.inference.hooks;
      h.pause = HookOf(hooks->pause, hooks->user_data, "pause");
      if (hooks->post_update != nullptr) {
        h.post_update.push_back(HookOf(hooks->post_update, hooks->user_data, "post_update"));
      }
      h.resume = HookOf(hooks->resume, hooks->user_data, "resume");
    }
    auto inference = std::make_unique<ws_inference>();
    WS_ASSIGN_OR_RETURN(inference->agent,
                        agent::InferenceAgent::Create(options.agent, rank, std::move(views),
                                                      std::move(options.inference)));
    inference->admin_address = inference->agent->admin_address();
    *out = inference.release();
    return Status::Ok();
  });
}

WS_API ws_status ws_inference_serve_one_push(ws_inference* inference, double timeout_s,
                                             ws_push_report* report, int32_t* served) {
  return capi::Guard(inference ? &inference->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(inference, "inference"));
    if (!(timeout_s >= 0)) return InvalidArgument("timeout_s ", timeout_s, " is not >= 0");
    // Read in place: moving the optional out trips GCC 12's -Wmaybe-uninitialized.
    const Result<std::optional<agent::PushReport>> r = inference->agent->ServeOnePush(timeout_s);
    WS_RETURN_IF_ERROR(r.status());
    if (served != nullptr) *served = r->has_value() ? 1 : 0;
    if (r->has_value()) FillReport(**r, report);
    return Status::Ok();
  });
}

WS_API ws_status ws_inference_pause(ws_inference* inference) {
  return capi::Guard(inference ? &inference->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(inference, "inference"));
    return inference->agent->Pause();
  });
}

WS_API ws_status ws_inference_resume(ws_inference* inference, int32_t force) {
  return capi::Guard(inference ? &inference->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(inference, "inference"));
    return inference->agent->Resume(force != 0);
  });
}

WS_API ws_status ws_inference_status_json(ws_inference* inference, char* buf, size_t size,
                                          size_t* needed) {
  return capi::Guard(inference ? &inference->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(inference, "inference"));
    if (size > 0) WS_RETURN_IF_ERROR(capi::NotNull(buf, "buf"));
    return capi::CopyOut(inference->agent->Snapshot().ToJson(), buf, size, needed);
  });
}

WS_API const char* ws_inference_admin_address(const ws_inference* inference) {
  return inference == nullptr ? "" : inference->admin_address.c_str();
}
WS_API const char* ws_inference_last_error(const ws_inference* inference) {
  return inference == nullptr ? "" : inference->error.Get();
}
WS_API void ws_inference_destroy(ws_inference* inference) { delete inference; }

}  // extern "C"
