// A cost model of one push replaying a TransferPlan on a cluster: no transfers, only arithmetic.
//
// Model (a fluid model: every link runs at its full rate whenever it has bytes to move):
// - Every trainer GPU and every inference GPU has its own NIC (nic rate, each direction); trainer
//   and inference GPUs are on different nodes; gathers between trainer GPUs of one node use NVLink.
// - Each trainer rank runs its units in plan order through two overlapped stages: prepare (gather
//   the source rows it does not hold, then convert at the HBM rate: source read + weight + scale
//   written) and send (its writes, each costing a fixed posting overhead). A unit is prepared only
//   when its staging ring range is free again, i.e. the unit that used it last was sent.
// - The busiest inference GPU's NIC paces everyone: a trainer rank sends no faster than its bytes
//   spread over the time that GPU needs to take its bytes in (senders share receivers evenly).
// - The push ends with one barrier round.
// Not modeled: congestion and incast beyond link rates, PCIe limits, the holders' side of gathers
// on the timeline (their bytes are counted in trainer_nic_bytes), receiver post-processing (MLA
// W_UK/W_UV recompute), pause/resume.
//
// Threading: pure functions of their arguments.
#pragma once

#include <string>
#include <string_view>

#include "plan/transfer_plan.h"

namespace weightsync {

struct NetworkModel {
  double nic_bytes_per_second = 50e9;      // 400 Gb/s ConnectX-7, per GPU, each direction
  double nvlink_bytes_per_second = 450e9;  // NVLink 4, per GPU, each direction
  double hbm_bytes_per_second = 3.0e12;    // achieved by conversion kernels (H200: 4.8 TB/s peak)
  double write_overhead_seconds = 5e-6;    // posting one write
  double barrier_seconds = 1e-3;           // the final acknowledgement round
};

struct SimulationReport {
  int64_t inference_bytes_held_per_gpu_max = 0;  // bytes the busiest inference GPU takes in
  int64_t inference_bytes_held_per_gpu_mean = 0;
  int64_t trainer_nic_bytes_max = 0;   // NIC egress of the busiest sending trainer rank
  int64_t trainer_nic_bytes_mean = 0;  // over sending trainer ranks
  int64_t writes_per_trainer_rank_max = 0;
  int64_t writes_total = 0;
  int64_t units = 0;
  int64_t gathered_units = 0;
  int64_t gather_bytes_total = 0;
  int64_t staging_bytes_per_trainer_rank_max = 0;
  int64_t bytes_total = 0;  // every destination byte of every replica
  int sending_trainer_ranks = 0;
  double speed_of_light_seconds =
      0;                           // max(busiest inference GPU / NIC, all bytes / all trainer NICs)
  double receiver_seconds = 0;     // busiest inference GPU's bytes / NIC
  double convert_seconds_max = 0;  // busiest rank's prepare stage alone
  double predicted_seconds = 0;
  bool coverage_ok = false;
  std::string coverage_error;  // ValidatePlan's message when coverage_ok is false
};

SimulationReport Simulate(const TransferPlan& plan, const NetworkModel& network);

// "50GB/s", "400Gb/s" (bits), "3TB/s", "450GB" (per second implied) -> bytes per second.
Result<double> ParseRate(std::string_view text);

}  // namespace weightsync
