// The data phase of a trainer's push: the NaN/Inf scan, gathers, the trainers' gather barrier,
// and the pipelined conversion into the staging ring and writes into the inference ranks.
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "agent/trainer_agent_impl.h"
#include "control/collective.h"
#include "convert/finite_check.h"

namespace weightsync::agent {

Status TrainerAgent::Impl::Transfer(uint64_t step, PushReport& report) {
  const auto deadline = transport::DeadlineIn(options_.push.transfer_timeout_s);
  if (nccl_) {
    WS_RETURN_IF_ERROR(AwaitScan(report));
    SpanTimer span(report.spans, "broadcast");
    WS_ASSIGN_OR_RETURN(report.bytes, nccl_->Send(deadline));
    return Status::Ok();
  }
  {
    // Every rank has paused, so a restarted rank has published its new regions by now.
    SpanTimer span(report.spans, "reconnect");
    WS_ASSIGN_OR_RETURN(std::vector<SetupInfo> changed, session_->ChangedSetups());
    for (const SetupInfo& info : changed) WS_RETURN_IF_ERROR(ConnectTo(info));
  }
  return ConvertAndWrite(step, deadline, report);
}

Status TrainerAgent::Impl::Prepare(uint64_t step, transport::Deadline deadline,
                                   PushReport& report) {
  WS_RETURN_IF_ERROR(AwaitScan(report));
  {
    SpanTimer span(report.spans, "gather");
    WS_RETURN_IF_ERROR(Gather(deadline, report));
  }
  // Every trainer rank's sources passed the scan and its gathers landed: only now may any byte
  // go to an inference rank.
  SpanTimer span(report.spans, "gather-barrier");
  return GatherBarrier(step, deadline);
}

Status TrainerAgent::Impl::AwaitScan(PushReport& report) {
  if (!scan_.valid()) return Status::Ok();  // already awaited
  SpanTimer span(report.spans, "scan-wait");
  Status scanned = scan_.get();
  report.spans.push_back(scan_span_);
  return scanned;
}

Status TrainerAgent::Impl::Scan(uint64_t step) const {
  std::vector<std::pair<const std::string*, int64_t>> bad;  // tensor, first bad element
  if (gpu_) {
    std::vector<DeviceElements> tensors;
    for (const auto& [name, view] : sources_) tensors.push_back({view.data, view.dtype, view.numel()});
    WS_ASSIGN_OR_RETURN(std::vector<int64_t> first, FirstNonFiniteOnDevice(tensors, stream_));
    size_t i = 0;
    for (const auto& [name, view] : sources_) {
      if (first[i] >= 0) bad.push_back({&name, first[i]});
      ++i;
    }
  } else {
    for (const auto& [name, view] : sources_) {
      const int64_t first = FirstNonFinite(view.data, view.dtype, view.numel());
      if (first >= 0) bad.push_back({&name, first});
    }
  }
  if (bad.empty()) return Status::Ok();
  const std::string& name = *bad.front().first;
  const TensorView& view = sources_.at(name);
  const SourceShard& shard = shards_.at(name);
  const int64_t per_row = view.dim() > 0 && view.shape[0] > 0 ? view.numel() / view.shape[0] : 1;
  const int64_t element = bad.front().second;
  return InvalidArgument("step ", step, ": source tensor ", name, " holds a NaN or Inf at element ",
                         element % per_row, " of ", shard.stacked ? "expert " : "row ",
                         shard.first_dim.begin + element / per_row,
                         "; nothing of this step was written to any inference rank");
}

Result<TensorView> TrainerAgent::Impl::LocalRows(const SourcePiece& piece, Range rows) const {
  const SourceShard& shard = shards_.at(piece.tensor);
  TensorView view = sources_.at(piece.tensor);
  if (piece.index >= 0) {
    if (piece.index < shard.first_dim.begin || piece.index >= shard.first_dim.end) {
      return Internal("trainer ", rank_, " does not hold expert ", piece.index, " of ",
                      piece.tensor);
    }
    WS_ASSIGN_OR_RETURN(view, view.Select(piece.index - shard.first_dim.begin));
    return view.Narrow(rows.begin, rows.size());
  }
  if (rows.begin < shard.first_dim.begin || rows.end > shard.first_dim.end) {
    return Internal("trainer ", rank_, " does not hold rows [", rows.begin, ", ", rows.end,
                    ") of ", piece.tensor);
  }
  WS_ASSIGN_OR_RETURN(view, view.Narrow(rows.begin - shard.first_dim.begin, rows.size()));
  if (view.dim() == 1) view = TensorView::Contiguous(view.data, {rows.size(), 1}, view.dtype);
  return view;
}

Result<TensorView> TrainerAgent::Impl::UnitSource(int32_t unit_id, int64_t part, int32_t piece,
                                                  Range rows) const {
  const ConvertUnit& unit = job_.plan.units[unit_id];
  const SourcePiece& p = job_.plan.tensors[unit.tensor].pieces[part][piece];
  if (!unit.gathered) return LocalRows(p, rows);
  auto it = gather_offsets_.find({unit_id, part, piece});
  if (it == gather_offsets_.end()) {
    return Internal("trainer ", rank_, ": no gathered rows of ", p.tensor, " for unit ", unit_id);
  }
  const DType dtype = job_.FindSource(p.tensor)->dtype;
  return TensorView::Contiguous(static_cast<char*>(gather_buffer_.data) + it->second,
                                {rows.size(), p.cols}, dtype);
}

Status TrainerAgent::Impl::Gather(transport::Deadline deadline, PushReport& report) {
  std::map<int, std::vector<Write>> writes;  // owner -> writes
  int64_t sent = 0;
  for (const GatherSegment& s : gathers_.segments) {
    if (s.holder != rank_) continue;
    const ConvertUnit& unit = job_.plan.units[s.unit];
    const SourcePiece& piece = job_.plan.tensors[unit.tensor].pieces[s.part][s.piece];
    WS_ASSIGN_OR_RETURN(TensorView rows, LocalRows(piece, s.source_rows));
    // Sources are not registered memory: stage them (or, for this rank's own units, copy them
    // straight into the gather buffer), then write.
    char* to = s.owner == rank_ ? static_cast<char*>(gather_buffer_.data) + s.buffer_offset
                                : static_cast<char*>(send_.data) + sent;
    if (gpu_) {
      WS_RETURN_IF_ERROR(CopyDevice2DAsync(to, s.bytes, rows.data, s.bytes, s.bytes, 1, stream_));
    } else {
      std::memcpy(to, rows.data, s.bytes);
    }
    if (s.owner == rank_) continue;
    writes[s.owner].push_back(Write{staging_->region(), send_.offset + sent, gather_remote_[s.owner],
                                    static_cast<uint64_t>(s.buffer_offset),
                                    static_cast<uint64_t>(s.bytes)});
    sent += s.bytes;
  }
  if (gpu_) WS_RETURN_IF_ERROR(SynchronizeCudaStream(stream_));
  for (auto& [owner, batch] : writes) {
    WS_RETURN_IF_ERROR(writer_->PostWrites(trainer_peers_[owner], batch, deadline)
                           .WithContext(StrCat("gathering rows into trainer ", owner)));
  }
  for (auto& [owner, batch] : writes) {
    WS_RETURN_IF_ERROR(writer_->Flush(trainer_peers_[owner], deadline)
                           .WithContext(StrCat("gathering rows into trainer ", owner)));
  }
  report.gather_bytes = sent;
  return Status::Ok();
}

Status TrainerAgent::Impl::GatherBarrier(uint64_t step, control::Deadline deadline) {
  control::CollectiveContext context = session_->rendezvous().context();
  std::erase_if(context.everyone,
                [](const control::ParticipantId& id) { return id.role != control::Role::kTrainer; });
  context.cancel_key = push::keys::Failed(options_.job_id, step);
  return control::ArriveAndWait(context, "barrier", "push-gather", step, "", false, deadline)
      .status()
      .WithContext(StrCat("trainer ", rank_, ": gather barrier of step ", step));
}

void TrainerAgent::Impl::ForgetGatherBarrier(uint64_t step) {
  // Every trainer left the gather barrier of an earlier step once this step committed.
  if (rank_ == 0 && gather_step_to_forget_) {
    const std::string prefix = control::CollectiveGenerationPrefix(
        options_.job_id, "barrier", "push-gather", *gather_step_to_forget_);
    (void)session_->rendezvous().context().client->DeletePrefix(prefix, control::DeadlineIn(5));
  }
  gather_step_to_forget_ = step;
}

Status TrainerAgent::Impl::PostUnitWrites(int32_t unit_id, transport::Deadline deadline,
                                          PushReport& report) {
  const TransferPlan& plan = job_.plan;
  const ConvertUnit& unit = plan.units[unit_id];
  const int ranks = plan.options.inference.ranks();
  std::map<int, std::vector<Write>> by_peer;
  for (int64_t i = unit.first_write; i < unit.first_write + unit.write_count; ++i) {
    const PlannedWrite& w = plan.writes[i];
    const int target = w.replica * ranks + w.rank;
    const uint64_t slot = ring_.offset + unit.staging_offset +
                          (w.scale ? AlignUp(unit.weight_bytes) : 0) + w.slot_offset;
    by_peer[target].push_back(Write{staging_->region(), slot,
                                    destinations_[target][unit.tensor][w.scale ? 1 : 0],
                                    static_cast<uint64_t>(w.dest_offset),
                                    static_cast<uint64_t>(w.bytes)});
    report.bytes += w.bytes;
    report.writes += 1;
  }
  for (auto& [target, writes] : by_peer) {
    WS_RETURN_IF_ERROR(writer_->PostWrites(inference_peers_[target], writes, deadline)
                           .WithContext(StrCat("writing to inference ", target)));
  }
  return Status::Ok();
}

Status TrainerAgent::Impl::FlushAll(transport::Deadline deadline) {
  for (auto& [target, peer] : inference_peers_) {
    WS_RETURN_IF_ERROR(writer_->Flush(peer, deadline)
                           .WithContext(StrCat("flushing writes to inference ", target)));
  }
  return Status::Ok();
}

Status TrainerAgent::Impl::ConvertAndWrite(uint64_t step, transport::Deadline deadline,
                                           PushReport& report) {
  const TransferPlan& plan = job_.plan;
  const std::vector<int32_t>& schedule = plan.schedule[rank_];
  const size_t n = schedule.size();
  // Shared between this (writer) thread and the converter thread, under mu.
  std::mutex mu;
  std::condition_variable changed;
  size_t converted = 0;  // units [0, converted) of the schedule are in their slots
  size_t flushed = 0;    // units [0, flushed) have been written and flushed: their ring is free
  bool flush_wanted = false;
  bool prepared = false;  // Prepare succeeded: gathered sources are in place, writes may go
  bool stop = false;
  Status converter_status;
  double convert_seconds = 0;

  const auto overlaps = [&](size_t a, size_t b) {
    const ConvertUnit& x = plan.units[schedule[a]];
    const ConvertUnit& y = plan.units[schedule[b]];
    return x.staging_offset < y.staging_offset + y.staging_bytes &&
           y.staging_offset < x.staging_offset + x.staging_bytes;
  };
  std::thread converter([&] {
    if (gpu_) {
      if (Status s = SetCudaDevice(device_); !s.ok()) {
        std::lock_guard lock(mu);
        converter_status = s;
        stop = true;
        changed.notify_all();
        return;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      {
        std::unique_lock lock(mu);
        // Ring space: every earlier unit sharing these bytes must have been flushed.
        const auto ring_free = [&] {
          for (size_t j = flushed; j < i; ++j) {
            if (overlaps(j, i)) return false;
          }
          return true;
        };
        const bool gathered = plan.units[schedule[i]].gathered;
        while (!stop && (!ring_free() || (gathered && !prepared))) {
          if (gathered && !prepared && ring_free()) {
            if (changed.wait_until(lock, deadline) == std::cv_status::timeout) {
              converter_status = DeadlineExceeded("trainer ", rank_, ": waiting for gathers");
              stop = true;
            }
            continue;
          }
          flush_wanted = true;
          changed.notify_all();
          if (changed.wait_until(lock, deadline) == std::cv_status::timeout) {
            converter_status = DeadlineExceeded("trainer ", rank_,
                                                ": waiting for staging ring space");
            stop = true;
          }
        }
        if (stop) break;
      }
      const auto start = control::Clock::now();
      Status s = ConvertUnitIntoSlot(schedule[i]);
      std::lock_guard lock(mu);
      convert_seconds += SecondsSince(start);
      if (!s.ok()) {
        converter_status = s;
        stop = true;
      } else {
        converted = i + 1;
      }
      changed.notify_all();
      if (stop) break;
    }
  });

  const Status prepare_status = Prepare(step, deadline, report);
  Status status = prepare_status;
  {
    std::lock_guard lock(mu);
    prepared = status.ok();
    changed.notify_all();
  }
  SpanTimer span(report.spans, "convert+write");
  size_t posted = 0;
  while (status.ok() && posted < n) {
    std::unique_lock lock(mu);
    changed.wait_until(lock, deadline, [&] { return converted > posted || flush_wanted || stop; });
    if (stop) break;
    if (converted > posted) {
      lock.unlock();
      status = PostUnitWrites(schedule[posted], deadline, report);
      ++posted;
    } else if (flush_wanted) {
      lock.unlock();
      status = FlushAll(deadline);
      lock.lock();
      flushed = posted;
      flush_wanted = false;
      changed.notify_all();
    } else if (transport::Clock::now() >= deadline) {
      status = DeadlineExceeded("trainer ", rank_, ": converting unit ", posted, " of ", n);
    }
  }
  if (status.ok() && posted == n) status = FlushAll(deadline);
  {
    std::lock_guard lock(mu);
    stop = true;
    changed.notify_all();
  }
  converter.join();
  report.units = static_cast<int64_t>(converted);
  report.convert_seconds = convert_seconds;
  // A refused source is reported by the scan with its row, whatever the converter hit first.
  if (!prepare_status.ok()) return prepare_status;
  if (!converter_status.ok()) return converter_status;
  return status;
}

Status TrainerAgent::Impl::ConvertUnitIntoSlot(int32_t unit_id) {
  const ConvertUnit& unit = job_.plan.units[unit_id];
  char* slot = static_cast<char*>(ring_.data) + unit.staging_offset;
  const SlotTarget target{slot, reinterpret_cast<float*>(slot + AlignUp(unit.weight_bytes))};
  WS_ASSIGN_OR_RETURN(
      UnitWork work,
      PlanUnitWork(
          job_.plan.tensors[unit.tensor], unit,
          [&](int64_t part, int32_t piece, Range rows) {
            return UnitSource(unit_id, part, piece, rows);
          },
          target, scratch_));
  if (!gpu_) return RunOnCpu(work, options_.convert_threads);
  WS_RETURN_IF_ERROR(cuda_->Enqueue(work.jobs, convert_stream_));
  WS_RETURN_IF_ERROR(cuda_->Finish());
  for (const StridedCopy& c : work.copies) {
    WS_RETURN_IF_ERROR(CopyDevice2DAsync(c.dst, c.dst_pitch, c.src, c.src_pitch, c.width, c.height,
                                         convert_stream_));
  }
  return SynchronizeCudaStream(convert_stream_);
}

}  // namespace weightsync::agent
