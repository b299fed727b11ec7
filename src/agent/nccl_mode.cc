#include "agent/nccl_mode.h"

#include <algorithm>
#include <functional>
#include <thread>

#include "control/participant.h"
#include "convert/conversion_spec.h"
#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS
#include "agent/nccl_api.h"
#endif

namespace weightsync::agent {

Status CheckNcclModeSupports(const JobPlan& job) {
  const PlanOptions& o = job.plan.options;
  if (o.trainer.world() != 1) {
    return Unimplemented("agent.mode=nccl: this version broadcasts from one trainer rank holding "
                         "whole tensors; the job has trainer ", o.trainer.ToString());
  }
  if (o.inference.tp != 1) {
    return Unimplemented("agent.mode=nccl: this version needs inference tp=1 (expert parallel "
                         "allowed); the job has ", o.inference.ToString());
  }
  return Status::Ok();
}

// ---- receiver: buffers and conversion jobs (no NCCL needed) ----------------------------------

struct NcclReceiver::Work {
  std::vector<ResolvedConversion> resolved;  // the jobs' strings point into these
  std::vector<ConvertJob> jobs;
  CudaConverter converter;
  CudaStream stream = nullptr;
};

NcclReceiver::~NcclReceiver() {
  for (const TensorView& b : buffers_) DeviceFree(b.data);
  if (work_) DestroyCudaStream(work_->stream);
}

Result<std::unique_ptr<NcclReceiver>> NcclReceiver::Create(
    const JobPlan& job, int rank, const std::map<std::string, TensorView>& destinations,
    int device) {
  WS_RETURN_IF_ERROR(CheckNcclModeSupports(job));
  std::unique_ptr<NcclReceiver> out(new NcclReceiver());
  out->work_ = std::make_unique<Work>();
  Work& work = *out->work_;
  WS_RETURN_IF_ERROR(SetCudaDevice(device));
  WS_ASSIGN_OR_RETURN(work.stream, CreateCudaStream());
  std::map<std::string, TensorView> by_name;
  for (const SourceTensor& source : job.sources) {
    const int64_t bytes = NumElements(source.shape) * static_cast<int64_t>(DTypeSize(source.dtype));
    WS_ASSIGN_OR_RETURN(void* data, DeviceAlloc(bytes));
    out->buffers_.push_back(TensorView::Contiguous(data, source.shape, source.dtype,
                                                   Device{DeviceKind::kCuda, device}));
    by_name[source.name] = out->buffers_.back();
  }
  WS_ASSIGN_OR_RETURN(ConversionPlan conversion, job.Conversions());
  std::map<std::string, size_t> planned;  // destination name -> plan tensor index
  for (size_t i = 0; i < job.plan.tensors.size(); ++i) planned[job.plan.tensors[i].shape.name] = i;
  const int local = rank % job.plan.options.inference.ranks();
  const SourceLookup lookup = [&](const std::string& name) -> Result<TensorView> {
    return by_name.at(name);
  };
  for (const ConversionSpec& spec : conversion.specs) {
    auto it = planned.find(spec.destination);
    if (it == planned.end()) continue;
    const LocalLayout& layout = job.plan.tensors[it->second].layouts[local];
    if (layout.empty()) continue;  // another rank's experts only
    WS_ASSIGN_OR_RETURN(ResolvedConversion resolved, ResolveConversion(spec, lookup));
    // Whole on this rank (padding rows after the end allowed): the plan sees a 1D tensor as
    // [n, 1], a conversion as one row of n.
    // Row ranges one after the other from 0 (a fused [gate; up] comes as two) hold the rows in
    // order, as the full tensor has them.
    bool in_order = !layout.rows.empty() && layout.rows.front().begin == 0;
    for (size_t r = 1; r < layout.rows.size(); ++r) {
      in_order = in_order && layout.rows[r].begin == layout.rows[r - 1].end;
    }
    const bool whole =
        in_order && layout.cols.begin == 0 &&
        (resolved.rows == 1 ? layout.local_rows() * layout.cols.size() >= resolved.cols
                            : layout.cols.size() == resolved.cols &&
                                  layout.rows.back().end >= resolved.rows);
    if (!whole) {
      return Unimplemented("agent.mode=nccl: ", spec.destination, " is split on this rank");
    }
    // Keep this rank's parts (experts), numbered in its local order.
    std::vector<ConversionPiece> mine;
    for (ConversionPiece piece : resolved.pieces) {
      auto at = std::find(layout.parts.begin(), layout.parts.end(), piece.part);
      if (at == layout.parts.end()) continue;
      piece.part = at - layout.parts.begin();
      mine.push_back(std::move(piece));
    }
    resolved.pieces = std::move(mine);
    work.resolved.push_back(std::move(resolved));
  }
  for (const ResolvedConversion& resolved : work.resolved) {
    const std::string& name = resolved.spec.destination;
    auto weight = destinations.find(name);
    if (weight == destinations.end()) return NotFound("inference ", rank, ": no tensor ", name);
    float* scale = nullptr;
    if (resolved.spec.quantization.quantized()) {
      auto s = destinations.find(resolved.spec.scale_name());
      if (s == destinations.end()) {
        return NotFound("inference ", rank, ": no tensor ", resolved.spec.scale_name());
      }
      scale = static_cast<float*>(s->second.data);
    }
    for (const ConvertJob& j : ConversionJobs(resolved, weight->second.data, scale)) {
      work.jobs.push_back(j);
    }
  }
  return out;
}

Status NcclReceiver::Convert() {
  WS_RETURN_IF_ERROR(work_->converter.Enqueue(work_->jobs, work_->stream));
  return work_->converter.Finish();
}

// ---- the communicator ------------------------------------------------------------------------

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS

struct NcclBroadcaster::State {
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  CudaStream stream = nullptr;
  bool broken = false;  // aborted: destroy would wait for work that never finishes
  int rank = 0;

  // Polls the communicator (and, with `stream`, its queued work) until done or `deadline`;
  // aborts the communicator on an error or at the deadline.
  std::function<Status()> alive;  // the job's liveness and abort checks, polled while waiting

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
    return Unavailable("NCCL rank ", rank, ": ", why, "; the communicator was aborted");
  }
};

Result<std::unique_ptr<NcclBroadcaster>> NcclBroadcaster::Create(
    control::StoreClient& client, const std::string& job_id, int nccl_rank, int world,
    int device, control::Deadline deadline, std::function<Status()> alive) {
  auto state = std::make_unique<State>();
  state->alive = std::move(alive);
  WS_ASSIGN_OR_RETURN(state->api, LoadNccl());
  state->rank = nccl_rank;
  WS_RETURN_IF_ERROR(SetCudaDevice(device));
  WS_ASSIGN_OR_RETURN(state->stream, CreateCudaStream());
  const std::string key = StrCat(control::JobPrefix(job_id), "agent/nccl/unique_id");
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
    return Unavailable("ncclCommInitRankConfig (rank ", nccl_rank, " of ", world,
                       "): ", state->api->ErrorText(r));
  }
  WS_RETURN_IF_ERROR(state->Wait(deadline, false, "creating the communicator"));
  return std::unique_ptr<NcclBroadcaster>(new NcclBroadcaster(std::move(state)));
}

NcclBroadcaster::NcclBroadcaster(std::unique_ptr<State> state) : state_(std::move(state)) {}

NcclBroadcaster::~NcclBroadcaster() {
  if (state_->comm && !state_->broken) state_->api->comm_destroy(state_->comm);
  DestroyCudaStream(state_->stream);
}

Status NcclBroadcaster::Broadcast(const std::vector<TensorView>& buffers,
                                  control::Deadline deadline) {
  State& s = *state_;
  if (s.broken) return Unavailable("NCCL rank ", s.rank, ": the communicator was aborted earlier");
  s.api->group_start();
  for (const TensorView& b : buffers) {
    const ncclDataType_t type = b.dtype == DType::kF32 ? ncclFloat32 : ncclBfloat16;
    if (b.dtype != DType::kF32 && b.dtype != DType::kBF16) {
      s.api->group_end();
      return InvalidArgument("NCCL broadcast of ", b.ToString(), ": bf16 or fp32 only");
    }
    s.api->broadcast(b.data, b.data, static_cast<size_t>(b.numel()), type, 0, s.comm,
                     reinterpret_cast<cudaStream_t>(s.stream));
  }
  const ncclResult_t r = s.api->group_end();
  if (r != ncclSuccess && r != ncclInProgress) {
    return s.Abort(StrCat("ncclGroupEnd: ", s.api->ErrorText(r)));
  }
  return s.Wait(deadline, true, StrCat("broadcasting ", buffers.size(), " tensors"));
}

#else

struct NcclBroadcaster::State {};

Result<std::unique_ptr<NcclBroadcaster>> NcclBroadcaster::Create(control::StoreClient&,
                                                                 const std::string&, int, int,
                                                                 int, control::Deadline,
                                                                 std::function<Status()>) {
  return Unavailable("agent.mode=nccl: built without NCCL headers (nccl.h)");
}
NcclBroadcaster::NcclBroadcaster(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclBroadcaster::~NcclBroadcaster() = default;
Status NcclBroadcaster::Broadcast(const std::vector<TensorView>&, control::Deadline) {
  return Unavailable("agent.mode=nccl: built without NCCL headers (nccl.h)");
}

#endif

}  // namespace weightsync::agent
