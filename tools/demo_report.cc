#include "demo_report.h"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "weightsync/status.h"

namespace weightsync::cli {
namespace {

using nlohmann::json;

std::string Fixed(double v, int digits = 3) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
  return buffer;
}

constexpr const char* kPhases[] = {
    "pause", "scan", "gather", "gather-barrier", "convert+write", "transfer-barrier", "commit"};

double Gbps(const PushRow& row) {
  return row.seconds > 0 ? static_cast<double>(row.bytes) / row.seconds / 1e9 : 0;
}

std::string Joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string Outcome(const PushRow& row, int inference_ranks) {
  std::string outcome;
  if (row.failed_trainers > 0) {
    outcome = StrCat("failed (", row.failed_trainers, " trainers; ", row.torn_inference,
                     " inference ranks torn)");
  } else if (row.unchecked == inference_ranks) {
    outcome = "not checked";
  } else {
    outcome = StrCat(row.verified, "/", inference_ranks);
  }
  if (!row.missing.empty()) outcome += StrCat("; no report from ", Joined(row.missing));
  return outcome;
}

// Adds one worker's push report to its row (and its phases to the trace).
void AddPush(PushRow& row, const std::string& worker, bool is_trainer, const json& report) {
  row.reporters.insert(worker);
  if (report.value("failed", false)) {
    if (is_trainer) {
      row.failed_trainers += 1;
      row.trainer_errors.push_back(report["error"].get<std::string>());
    } else if (report.value("state", "") == "torn") {
      row.torn_inference += 1;
    } else {
      row.errors.push_back(
          StrCat(worker, " failed without being torn: ", report["error"].get<std::string>()));
    }
  } else if (is_trainer) {
    row.seconds = std::max(row.seconds, report["seconds"].get<double>());
  } else {
    row.bytes += report["bytes"].get<int64_t>();
    if (!report.value("checked", true)) {
      row.unchecked += 1;
    } else if (report["verified"].get<bool>()) {
      row.verified += 1;
    } else {
      row.errors.push_back(report["error"].get<std::string>());
    }
  }
  if (!is_trainer) return;
  for (const json& span : report["spans"]) {
    double& slowest = row.phase_s[span["name"].get<std::string>()];
    slowest = std::max(slowest, static_cast<double>(span["dur"].get<int64_t>()) / 1e6);
  }
}

}  // namespace

DemoReport::DemoReport(const DemoFlags& flags, int trainers, int inference, bool as_json,
                       bool progress_bar)
    : flags_(flags),
      trainers_(trainers),
      inference_(inference),
      as_json_(as_json),
      progress_bar_(progress_bar) {}

void DemoReport::Add(const std::string& worker, bool is_trainer, int rank, const json& line) {
  if (line.contains("speed_of_light_seconds") || line.contains("speed_of_light_skipped")) {
    speed_of_light_ = line;
    return;
  }
  if (!line.contains("step")) return;
  AddPush(rows_[line["step"].get<int>()], worker, is_trainer, line);
  for (const json& span : line["spans"]) {
    trace_events_.push_back({{"name", span["name"]},
                             {"ph", "X"},
                             {"ts", span["ts"]},
                             {"dur", span["dur"]},
                             {"pid", is_trainer ? 1 : 2},
                             {"tid", rank},
                             {"args", {{"step", line["step"]}}}});
  }
}

void DemoReport::PrintHeader(const std::string& title) const {
  if (as_json_) return;
  std::cout << title << "\n\n| push | bytes | seconds | GB/s |";
  for (const char* p : kPhases) std::cout << " " << p << " |";
  std::cout << " verified |\n|---|---|---|---|";
  for (size_t i = 0; i < std::size(kPhases); ++i) std::cout << "---|";
  std::cout << "---|\n";
}

void DemoReport::PrintRow(int step, const PushRow& row) const {
  if (progress_bar_) std::fprintf(stderr, "\r\033[K");  // the row replaces the bar
  if (as_json_) {
    std::cout << json{{"step", step},
                      {"bytes", row.bytes},
                      {"seconds", row.seconds},
                      {"gbps", Gbps(row)},
                      {"phases", row.phase_s},
                      {"verified", row.verified == inference_},
                      {"committed", row.failed_trainers == 0 && row.missing.empty()},
                      {"failure", row.trainer_errors.empty() ? "" : row.trainer_errors[0]},
                      {"missing", row.missing}}
                     .dump()
              << std::endl;
    return;
  }
  std::cout << "| " << step << " | " << row.bytes << " | " << Fixed(row.seconds) << " | "
            << Fixed(Gbps(row), 2) << " |";
  for (const char* p : kPhases) {
    auto it = row.phase_s.find(p);
    std::cout << " " << Fixed(it == row.phase_s.end() ? 0 : it->second) << " |";
  }
  std::cout << " " << Outcome(row, inference_) << " |" << std::endl;
}

// Whether push `step` went as it should; says why not on stderr.
bool DemoReport::Judge(int step, const PushRow& row) const {
  bool ok = row.errors.empty() && row.missing.empty();
  for (const std::string& e : row.errors) std::cerr << "push " << step << ": " << e << "\n";
  if (!row.missing.empty()) {
    std::cerr << "push " << step << ": no report from " << Joined(row.missing) << "\n";
  }
  const bool killing = flags_.kill_inference >= 0;
  if (killing && step == flags_.kill_at_step) {
    // Every trainer must have failed naming the killed rank; every survivor must be torn.
    const std::string victim = StrCat("inference ", flags_.kill_inference);
    for (const std::string& e : row.trainer_errors) {
      if (e.find(victim) != std::string::npos) continue;
      std::cerr << "push " << step << ": a trainer's error does not name " << victim << ": " << e
                << "\n";
      ok = false;
    }
    if (row.failed_trainers != trainers_ || row.torn_inference != inference_ - 1) {
      std::cerr << "push " << step << ": expected every trainer to fail and " << inference_ - 1
                << " inference ranks torn, got " << row.failed_trainers << " and "
                << row.torn_inference << "\n";
      ok = false;
    }
    return ok;
  }
  if (row.failed_trainers > 0 || row.verified + row.unchecked != inference_ ||
      (step == flags_.pushes && row.verified != inference_)) {
    for (const std::string& e : row.trainer_errors)
      std::cerr << "push " << step << ": " << e << "\n";
    ok = false;
  }
  return ok;
}

void DemoReport::PrintSpeedOfLight() const {
  if (speed_of_light_.contains("speed_of_light_skipped")) {
    const std::string why = speed_of_light_["speed_of_light_skipped"].get<std::string>();
    std::cout << (as_json_ ? json{{"speed_of_light_skipped", why}}.dump()
                           : StrCat("\nspeed of light: not measured (", why, ")"))
              << std::endl;
    return;
  }
  if (speed_of_light_.is_null()) return;
  const double sol = speed_of_light_["speed_of_light_seconds"].get<double>();
  double best = 0;
  for (const auto& [step, row] : rows_) {
    if (row.failed_trainers == 0 && row.seconds > 0 && (best == 0 || row.seconds < best)) {
      best = row.seconds;
    }
  }
  if (as_json_) {
    std::cout << json{{"speed_of_light_seconds", sol},
                      {"best_push_seconds", best},
                      {"push_over_speed_of_light", sol > 0 ? best / sol : 0}}
                     .dump()
              << std::endl;
    return;
  }
  std::cout << "\nspeed of light (peer copies of every inference GPU's bytes, all at once): "
            << Fixed(sol, 4) << " s; best push " << Fixed(best, 4)
            << " s = " << Fixed(sol > 0 ? best / sol : 0, 2) << "x\n";
}

bool DemoReport::Finish(bool workers_ok, const std::string& trace_path) {
  if (progress_bar_) std::fprintf(stderr, "\r\033[K");
  bool ok = workers_ok;
  for (const auto& [step, row] : rows_) ok = Judge(step, row) && ok;
  ok = ok && next_row_ == flags_.pushes + 1;
  if (!trace_path.empty()) {
    trace_events_.push_back(
        {{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "trainers"}}}});
    trace_events_.push_back(
        {{"name", "process_name"}, {"ph", "M"}, {"pid", 2}, {"args", {{"name", "inference"}}}});
    std::ofstream(trace_path) << json{{"traceEvents", trace_events_}}.dump() << "\n";
  }
  PrintSpeedOfLight();
  if (as_json_) return ok;
  const bool killing = flags_.kill_inference >= 0;
  std::cout << "\n"
            << (!ok       ? "FAILED"
                : killing ? StrCat("push ", flags_.kill_at_step, " failed naming inference ",
                                   flags_.kill_inference,
                                   " as the drill expects; every other push committed and "
                                   "verified")
                : flags_.verify == "last"
                    ? std::string("all pushes committed; the last one verified")
                    : std::string("all pushes committed and verified"))
            << "\n";
  return ok;
}

}  // namespace weightsync::cli
