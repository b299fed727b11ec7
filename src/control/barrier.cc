#include "control/barrier.h"

namespace weightsync::control {

Status Barrier::Arrive(uint64_t generation, Deadline deadline) {
  return Arrive(generation, deadline, /*cancel_key=*/"");
}

Status Barrier::Arrive(uint64_t generation, Deadline deadline, std::string_view cancel_key) {
  CollectiveContext context = rendezvous_.context();
  context.cancel_key = std::string(cancel_key);
  WS_RETURN_IF_ERROR(ArriveAndWait(context, "barrier", name_, generation,
                                   /*payload=*/"", /*gather=*/false, deadline)
                         .status());
  last_generation_ = generation;
  return Status::Ok();
}

Status Barrier::Forget(uint64_t generation, Deadline deadline) {
  const CollectiveContext& context = rendezvous_.context();
  return context.client
      ->DeletePrefix(CollectiveGenerationPrefix(context.job_id, "barrier", name_, generation),
                     deadline)
      .status();
}

Status Barrier::ArriveNext(Deadline deadline) {
  return Arrive(last_generation_ ? *last_generation_ + 1 : 0, deadline);
}

}  // namespace weightsync::control
