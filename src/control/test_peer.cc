// control_test_peer: one participant of a job, run as its own process by the control tests.
//
//   control_test_peer ADDR JOB ROLE RANK TRAINERS INFERENCE MODE
// MODE "rounds": join, run two all-gather rounds and check every payload, exit 0 on success.
// MODE "hang":   join, heartbeat every 0.1 s, then sleep until killed (for liveness tests).
// The store token comes from $WEIGHTSYNC_STORE_TOKEN.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/auth.h"
#include "control/liveness.h"
#include "control/rendezvous.h"

namespace weightsync::control {
namespace {

Status CheckRound(Rendezvous& rendezvous, std::string_view name) {
  std::string mine = StrCat(name, ":", rendezvous.me().id.ToString());
  WS_ASSIGN_OR_RETURN(auto entries, rendezvous.Round(name, mine, DeadlineIn(20)));
  for (const auto& entry : entries) {
    if (entry.payload != StrCat(name, ":", entry.id.ToString())) {
      return Internal("round ", name, ": bad payload from ", entry.id.ToString());
    }
  }
  if (entries.size() != rendezvous.participants().size()) return Internal("short round");
  return Status::Ok();
}

Status Run(int argc, char** argv) {
  if (argc != 8) return InvalidArgument("usage: ADDR JOB ROLE RANK TRAINERS INFERENCE MODE");
  StoreClientOptions store;
  store.address = argv[1];
  WS_ASSIGN_OR_RETURN(store.token, LoadStoreToken(""));
  Membership me;
  me.job_id = argv[2];
  WS_ASSIGN_OR_RETURN(me.id.role, ParseRole(argv[3]));
  me.id.rank = std::atoi(argv[4]);
  me.trainer_world_size = std::atoi(argv[5]);
  me.inference_world_size = std::atoi(argv[6]);
  me.spec_hash = "spec-abc";
  std::string mode = argv[7];

  WS_ASSIGN_OR_RETURN(auto client, StoreClient::Connect(store, DeadlineIn(10)));
  WS_ASSIGN_OR_RETURN(auto rendezvous, Rendezvous::Join(*client, me, DeadlineIn(10)));
  if (mode == "rounds") {
    WS_RETURN_IF_ERROR(CheckRound(*rendezvous, "layouts"));
    return CheckRound(*rendezvous, "transport");
  }
  if (mode == "hang") {
    LivenessOptions liveness{0.1, 0.5};
    WS_ASSIGN_OR_RETURN(auto heartbeat,
                        Heartbeat::Start(store, me.job_id, me.id, liveness, DeadlineIn(10)));
    ::sleep(60);  // the test kills us long before
    return Status::Ok();
  }
  return InvalidArgument("unknown mode ", mode);
}

}  // namespace
}  // namespace weightsync::control

int main(int argc, char** argv) {
  weightsync::Status status = weightsync::control::Run(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "control_test_peer: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
