// `weightsync demo`'s account of each push: what every worker reported, the row printed for it
// (table or JSON), and the final judgement (every push committed and verified, or the fault
// drill's expected failure).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "demo_flags.h"

namespace weightsync::cli {

struct PushRow {
  int64_t bytes = 0;
  double seconds = 0;
  std::map<std::string, double> phase_s;  // slowest trainer's time in each phase
  int verified = 0;
  int unchecked = 0;  // inference ranks that did not verify this push (--verify last)
  int failed_trainers = 0;
  int torn_inference = 0;  // inference ranks that reported the push failed and themselves torn
  std::set<std::string> reporters;          // "trainer 0", "inference 1", ...
  std::vector<std::string> missing;         // workers that stopped before reporting this push
  std::vector<std::string> errors;          // verification mismatches and unexpected failures
  std::vector<std::string> trainer_errors;  // why the push failed, as each trainer saw it
};

class DemoReport {
 public:
  // `progress_bar`: a bar is drawn on stderr between rows (a terminal); each row clears it first.
  DemoReport(const DemoFlags& flags, int trainers, int inference, bool as_json, bool progress_bar);

  // One JSON line of a worker ("trainer 0"): a push report or the speed-of-light measurement.
  void Add(const std::string& worker, bool is_trainer, int rank, const nlohmann::json& line);
  // Prints, in order, every row whose push is accounted for: `accounted(step)` says whether every
  // worker reported it or can no longer (and names those in `missing`).
  template <typename Accounted>
  void PrintReadyRows(Accounted accounted) {
    while (rows_.count(next_row_) && accounted(next_row_, rows_[next_row_])) {
      PrintRow(next_row_, rows_[next_row_]);
      ++next_row_;
    }
  }
  int rows_printed() const { return next_row_ - 1; }
  bool as_json() const { return as_json_; }
  bool progress_bar() const { return progress_bar_; }

  void PrintHeader(const std::string& title) const;
  // Writes the trace, prints the speed of light and the verdict; true when the run is good.
  bool Finish(bool workers_ok, const std::string& trace_path);

 private:
  void PrintRow(int step, const PushRow& row) const;
  bool Judge(int step, const PushRow& row) const;
  void PrintSpeedOfLight() const;

  const DemoFlags& flags_;
  int trainers_;
  int inference_;
  bool as_json_;
  bool progress_bar_;
  std::map<int, PushRow> rows_;
  int next_row_ = 1;
  nlohmann::json speed_of_light_;  // GPU runs: trainer 0's peer-copy measurement
  nlohmann::json trace_events_ = nlohmann::json::array();
};

}  // namespace weightsync::cli
