#include "plan/simulator.h"

#include <algorithm>
#include <cctype>

#include "core/config.h"

namespace weightsync {
namespace {

double Seconds(int64_t bytes, double rate) { return static_cast<double>(bytes) / rate; }

bool Overlaps(const ConvertUnit& a, const ConvertUnit& b) {
  return a.staging_offset < b.staging_offset + b.staging_bytes &&
         b.staging_offset < a.staging_offset + a.staging_bytes;
}

struct RankTimeline {
  double end = 0;
  double prepare = 0;  // sum of prepare stages
};

RankTimeline SimulateRank(const TransferPlan& plan, const std::vector<int32_t>& units,
                          const NetworkModel& net, double pace_seconds, int64_t write_bytes) {
  // Paced to the busiest receiver: never faster than the NIC, never faster than needed to finish
  // this rank's bytes when that receiver finishes.
  double rate = net.nic_bytes_per_second;
  if (pace_seconds > 0 && write_bytes > 0) {
    rate = std::min(rate, static_cast<double>(write_bytes) / pace_seconds);
  }
  RankTimeline timeline;
  std::vector<double> prepared(units.size()), sent(units.size());
  for (size_t k = 0; k < units.size(); ++k) {
    const ConvertUnit& unit = plan.units[units[k]];
    double start = k ? prepared[k - 1] : 0.0;
    for (size_t j = k; j-- > 0;) {  // the last unit that used this staging range must be sent
      if (Overlaps(plan.units[units[j]], unit)) {
        start = std::max(start, sent[j]);
        break;
      }
    }
    const int64_t nvlink_bytes = unit.gather_bytes - unit.gather_nic_bytes;
    const double prepare =
        Seconds(nvlink_bytes, net.nvlink_bytes_per_second) +
        Seconds(unit.gather_nic_bytes, net.nic_bytes_per_second) +
        Seconds(unit.source_bytes + unit.weight_bytes + unit.scale_bytes, net.hbm_bytes_per_second);
    timeline.prepare += prepare;
    prepared[k] = start + prepare;
    const double own = Seconds(unit.egress_bytes, net.nic_bytes_per_second) +
                       static_cast<double>(unit.write_count) * net.write_overhead_seconds;
    const double send = std::max(own, Seconds(unit.egress_bytes, rate));
    sent[k] = std::max(prepared[k], k ? sent[k - 1] : 0.0) + send;
  }
  timeline.end = units.empty() ? 0.0 : sent.back();
  return timeline;
}

}  // namespace

Result<double> ParseRate(std::string_view text) {
  std::string t(text);
  if (t.ends_with("/s")) t.resize(t.size() - 2);
  double scale = 1;
  // A lower-case b after a unit prefix means bits, as NICs are sold: 400Gb/s = 50GB/s.
  if (t.size() >= 2 && t.back() == 'b' &&
      std::isalpha(static_cast<unsigned char>(t[t.size() - 2]))) {
    t.back() = 'B';
    scale = 1.0 / 8;
  }
  Result<uint64_t> bytes = ParseBytes(t);
  if (!bytes.ok() || *bytes == 0) {
    return InvalidArgument("'", text, "' is not a positive rate (e.g. 50GB/s, 400Gb/s)");
  }
  return static_cast<double>(*bytes) * scale;
}

SimulationReport Simulate(const TransferPlan& plan, const NetworkModel& net) {
  SimulationReport r;
  Status valid = ValidatePlan(plan);
  r.coverage_ok = valid.ok();
  if (!valid.ok()) r.coverage_error = valid.ToString();

  for (int64_t bytes : plan.inference_bytes) {
    r.inference_bytes_held_per_gpu_max = std::max(r.inference_bytes_held_per_gpu_max, bytes);
    r.bytes_total += bytes;
  }
  if (!plan.inference_bytes.empty()) {
    r.inference_bytes_held_per_gpu_mean =
        r.bytes_total / static_cast<int64_t>(plan.inference_bytes.size());
  }
  const TrainerParallelism& trainer = plan.options.trainer;
  r.sending_trainer_ranks = trainer.senders();
  int64_t nic_total = 0;
  for (int rank = 0; rank < trainer.world(); ++rank) {
    const TrainerRankLoad& load = plan.trainer[rank];
    r.trainer_nic_bytes_max = std::max(r.trainer_nic_bytes_max, load.nic_egress_bytes());
    if (rank < r.sending_trainer_ranks) nic_total += load.nic_egress_bytes();
    r.writes_per_trainer_rank_max = std::max(r.writes_per_trainer_rank_max, load.writes);
    r.staging_bytes_per_trainer_rank_max =
        std::max(r.staging_bytes_per_trainer_rank_max, load.staging_bytes);
    r.writes_total += load.writes;
  }
  r.trainer_nic_bytes_mean = nic_total / std::max(1, r.sending_trainer_ranks);
  r.units = static_cast<int64_t>(plan.units.size());
  for (const ConvertUnit& unit : plan.units) {
    r.gathered_units += unit.gathered ? 1 : 0;
    r.gather_bytes_total += unit.gather_bytes;
  }

  r.receiver_seconds = Seconds(r.inference_bytes_held_per_gpu_max, net.nic_bytes_per_second);
  r.speed_of_light_seconds = std::max(
      r.receiver_seconds, Seconds(r.bytes_total, net.nic_bytes_per_second * trainer.world()));
  double slowest = 0;
  for (int rank = 0; rank < trainer.world(); ++rank) {
    RankTimeline t = SimulateRank(plan, plan.schedule[rank], net, r.receiver_seconds,
                                  plan.trainer[rank].write_bytes);
    slowest = std::max(slowest, t.end);
    r.convert_seconds_max = std::max(r.convert_seconds_max, t.prepare);
  }
  r.predicted_seconds = std::max(slowest, r.receiver_seconds) + net.barrier_seconds;
  return r;
}

}  // namespace weightsync
