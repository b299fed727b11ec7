// push_test_peer: one participant of a push, run as its own process by the push tests (so they can
// kill -9 or SIGSTOP it).
//
//   push_test_peer ADDR JOB ROLE RANK TRAINERS INFERENCE MODE [PUSHES]
// MODE "ok":             take part in PUSHES pushes (steps 1..PUSHES), exit 0 when all committed.
// MODE "stall-pause":    (inference) the pause hook of push 1 hangs.
// MODE "stall-transfer": (trainer) push 1's data phase hangs.
// MODE "stall-commit":   (trainer) finishes push 1's transfer, then hangs instead of committing.
// A stalling peer sets test/<job>/reached before it hangs, so the test knows when to strike. It
// heartbeats every 0.1 s (liveness timeout 0.5 s). The store token is $WEIGHTSYNC_STORE_TOKEN;
// $WEIGHTSYNC_PUSH_ORCHESTRATOR=external lets `weightsync orchestrate` request the pushes.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/auth.h"
#include "control/liveness.h"
#include "control/rendezvous.h"
#include "push/inference_push.h"
#include "push/trainer_push.h"

namespace weightsync::push {
namespace {

using control::DeadlineIn;

// Deadlines for tests; the orchestrator mode from $WEIGHTSYNC_PUSH_ORCHESTRATOR (CLI tests).
PushOptions PeerOptions() {
  PushOptions options;
  auto config = Config::FromEnvironment();
  if (config.ok()) {
    auto from_config = PushOptions::FromConfig(*config);
    if (from_config.ok()) options = *from_config;
  }
  options.pause_timeout_s = 10;
  options.transfer_timeout_s = 10;
  options.commit_timeout_s = 10;
  return options;
}

Status Run(int argc, char** argv) {
  if (argc < 8)
    return InvalidArgument("usage: ADDR JOB ROLE RANK TRAINERS INFERENCE MODE [PUSHES]");
  control::StoreClientOptions store;
  store.address = argv[1];
  WS_ASSIGN_OR_RETURN(store.token, control::LoadStoreToken(""));
  control::Membership me;
  me.job_id = argv[2];
  WS_ASSIGN_OR_RETURN(me.id.role, control::ParseRole(argv[3]));
  me.id.rank = std::atoi(argv[4]);
  me.trainer_world_size = std::atoi(argv[5]);
  me.inference_world_size = std::atoi(argv[6]);
  me.spec_hash = "spec-abc";
  const std::string mode = argv[7];
  const int pushes = argc > 8 ? std::atoi(argv[8]) : 1;

  WS_ASSIGN_OR_RETURN(auto client, control::StoreClient::Connect(store, DeadlineIn(10)));
  control::LivenessOptions liveness{0.1, 0.5};
  WS_ASSIGN_OR_RETURN(auto heartbeat,
                      control::Heartbeat::Start(store, me.job_id, me.id, liveness, DeadlineIn(10)));
  WS_ASSIGN_OR_RETURN(auto watcher,
                      control::LivenessWatcher::Start(store, me.job_id, liveness, DeadlineIn(10)));
  WS_ASSIGN_OR_RETURN(auto rendezvous, control::Rendezvous::Join(*client, me, DeadlineIn(10)));
  rendezvous->SetLivenessWatcher(watcher.get());
  const std::string reached_key = StrCat("test/", me.job_id, "/reached");
  auto stall = [&]() -> Status {
    // A separate connection: the rendezvous's client may be busy.
    auto signal = control::StoreClient::Connect(store, DeadlineIn(5));
    if (signal.ok()) (void)(*signal)->Set(reached_key, me.id.ToString(), DeadlineIn(5));
    ::sleep(60);  // the test kills us long before
    return Internal("still alive after 60 s");
  };

  if (me.id.role == control::Role::kTrainer) {
    TrainerPush trainer(*rendezvous, PeerOptions());
    if (mode == "ok") {
      for (int step = 1; step <= pushes; ++step) {
        WS_RETURN_IF_ERROR(trainer.Push(static_cast<uint64_t>(step), {}));
      }
      return Status::Ok();
    }
    WS_RETURN_IF_ERROR(trainer.BeginPush(1));
    WS_RETURN_IF_ERROR(trainer.StartTransfer());
    if (mode == "stall-transfer") return stall();
    WS_RETURN_IF_ERROR(trainer.FinishTransfer());
    if (mode == "stall-commit") return stall();
    return InvalidArgument("unknown trainer mode ", mode);
  }

  InferenceHooks hooks;
  if (mode == "stall-pause") hooks.pause = stall;
  InferencePush inference(*rendezvous, PeerOptions(), hooks);
  for (int done = 0; done < pushes;) {
    WS_ASSIGN_OR_RETURN(auto step, inference.ServeOnePush(DeadlineIn(20)));
    if (!step) return DeadlineExceeded("no push requested within 20 s");
    ++done;
  }
  return Status::Ok();
}

}  // namespace
}  // namespace weightsync::push

int main(int argc, char** argv) {
  weightsync::Status status = weightsync::push::Run(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "push_test_peer: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
