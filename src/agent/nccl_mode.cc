#include "agent/nccl_mode.h"

#include <thread>

#include "control/participant.h"
#include "convert/cuda/device_ops.h"

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS
#include "agent/nccl_api.h"
#endif

namespace weightsync::agent {

std::vector<std::vector<size_t>> NcclBuckets(const JobPlan& job) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i = 0; i < job.sources.size(); ++i) {
    const SourceTensor& source = job.sources[i];
    const int64_t bytes = source.bytes();
    if (buckets.empty() || filled + bytes > kNcclBucketBytes) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes;
  }
  return buckets;
}

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS

struct NcclCommunicator::State {
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  CudaStream stream = nullptr;
  bool broken = false;  // aborted: destroy would wait for work that never finishes
  std::string name;
  int rank = 0;
  std::function<Status()> alive;  // the job's liveness and abort checks, polled while waiting

  // Polls the communicator (and, with `stream_too`, its queued work) until done or `deadline`;
  // aborts the communicator on an error, a failed liveness check or at the deadline.
  Status Wait(control::Deadline deadline, bool stream_too, std::string_view what) {
    auto next_check = control::Clock::now();
    while (true) {
      if (alive && control::Clock::now() >= next_check) {
        if (Status ok = alive(); !ok.ok()) return Abort(StrCat(what, ": ", ok.message()));
        next_check = control::Clock::now() + std::chrono::milliseconds(100);
      }
      ncclResult_t state = ncclSuccess;
      api->comm_get_async_error(comm, &state);
      if (state != ncclSuccess && state != ncclInProgress) {
        return Abort(StrCat(what, ": ", api->ErrorText(state)));
      }
      if (state == ncclSuccess) {
        if (!stream_too) return Status::Ok();
        Result<bool> done = CudaStreamDone(stream);
        if (!done.ok()) return Abort(StrCat(what, ": ", done.status().message()));
        if (*done) return Status::Ok();
      }
      if (control::Clock::now() >= deadline) {
        return Abort(StrCat(what, ": not finished by the deadline (a peer missing or stuck)"));
      }
      std::this_thread::yield();
    }
  }
  Status Abort(const std::string& why) {
    if (!broken) api->comm_abort(comm);
    broken = true;
    return Unavailable("NCCL ", name, " rank ", rank, ": ", why, "; the communicator was aborted");
  }
  Status Usable() const {
    if (!broken) return Status::Ok();
    return Unavailable("NCCL ", name, " rank ", rank, ": the communicator was aborted earlier");
  }
  // Ends the group started by the caller and waits for its work.
  Status EndGroup(control::Deadline deadline, std::string_view what) {
    const ncclResult_t r = api->group_end();
    if (r != ncclSuccess && r != ncclInProgress) {
      return Abort(StrCat(what, ": ncclGroupEnd: ", api->ErrorText(r)));
    }
    return Wait(deadline, true, what);
  }
};

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    control::StoreClient& client, const std::string& job_id, std::string_view name, int nccl_rank,
    int world, int device, control::Deadline deadline, std::function<Status()> alive) {
  auto state = std::make_unique<State>();
  state->alive = std::move(alive);
  state->name = std::string(name);
  state->rank = nccl_rank;
  WS_ASSIGN_OR_RETURN(state->api, LoadNccl());
  WS_RETURN_IF_ERROR(SetCudaDevice(device));
  WS_ASSIGN_OR_RETURN(state->stream, CreateCudaStream());
  const std::string key = StrCat(control::JobPrefix(job_id), "agent/nccl/", name, "/unique_id");
  ncclUniqueId id{};
  if (nccl_rank == 0) {
    const ncclResult_t r = state->api->get_unique_id(&id);
    if (r != ncclSuccess) return Unavailable("ncclGetUniqueId: ", state->api->ErrorText(r));
    WS_RETURN_IF_ERROR(client.Set(key, std::string(id.internal, sizeof id.internal), deadline));
  } else {
    WS_ASSIGN_OR_RETURN(std::string bytes, client.Wait(key, deadline));
    if (bytes.size() != sizeof id.internal) return DataLoss("NCCL unique id of the wrong size");
    std::copy(bytes.begin(), bytes.end(), id.internal);
  }
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so the wait below has a deadline
  const ncclResult_t r =
      state->api->comm_init_rank_config(&state->comm, world, id, nccl_rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    return Unavailable("ncclCommInitRankConfig (", name, " rank ", nccl_rank, " of ", world,
                       "): ", state->api->ErrorText(r));
  }
  WS_RETURN_IF_ERROR(state->Wait(deadline, false, "creating the communicator"));
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(state)));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}

NcclCommunicator::~NcclCommunicator() {
  if (state_->comm && !state_->broken) state_->api->comm_destroy(state_->comm);
  DestroyCudaStream(state_->stream);
}

Status NcclCommunicator::Broadcast(const std::vector<TensorView>& buffers,
                                   control::Deadline deadline) {
  State& s = *state_;
  WS_RETURN_IF_ERROR(s.Usable());
  for (const TensorView& b : buffers) {
    if (b.dtype != DType::kF32 && b.dtype != DType::kBF16) {
      return InvalidArgument("NCCL broadcast of ", b.ToString(), ": bf16 or fp32 only");
    }
  }
  s.api->group_start();
  for (const TensorView& b : buffers) {
    const ncclDataType_t type = b.dtype == DType::kF32 ? ncclFloat32 : ncclBfloat16;
    s.api->broadcast(b.data, b.data, static_cast<size_t>(b.numel()), type, 0, s.comm,
                     reinterpret_cast<cudaStream_t>(s.stream));
  }
  return s.EndGroup(deadline, StrCat("broadcasting ", buffers.size(), " tensors"));
}

Status NcclCommunicator::Exchange(const std::vector<PeerTransfer>& transfers,
                                  control::Deadline deadline) {
  State& s = *state_;
  WS_RETURN_IF_ERROR(s.Usable());
  s.api->group_start();
  for (const PeerTransfer& t : transfers) {
    auto* stream = reinterpret_cast<cudaStream_t>(s.stream);
    const auto count = static_cast<size_t>(t.bytes);
    if (t.send) {
      s.api->send(t.data, count, ncclUint8, t.peer, s.comm, stream);
    } else {
      s.api->recv(t.data, count, ncclUint8, t.peer, s.comm, stream);
    }
  }
  return s.EndGroup(deadline, StrCat("exchanging ", transfers.size(), " shards"));
}

#else

struct NcclCommunicator::State {};

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(control::StoreClient&,
                                                                   const std::string&,
                                                                   std::string_view, int, int, int,
                                                                   control::Deadline,
                                                                   std::function<Status()>) {
  return Unavailable("agent.mode=nccl: built without NCCL headers (nccl.h)");
}
NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclCommunicator::~NcclCommunicator() = default;
Status NcclCommunicator::Broadcast(const std::vector<TensorView>&, control::Deadline) {
  return Unavailable("agent.mode=nccl: built without NCCL headers (nccl.h)");
}
Status NcclCommunicator::Exchange(const std::vector<PeerTransfer>&, control::Deadline) {
  return Unavailable("agent.mode=nccl: built without NCCL headers (nccl.h)");
}

#endif

}  // namespace weightsync::agent
