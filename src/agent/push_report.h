// What one rank did in one push: bytes, writes, and when each of its phases ran (wall-clock
// microseconds, so the traces of ranks on one machine line up in one Chrome/Perfetto trace).
//
// Threading: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weightsync::agent {

struct PhaseSpan {
  std::string name;  // "pause", "scan", "gather", "convert", "write", "flush", "commit", ...
  int64_t start_us = 0;  // since the Unix epoch
  int64_t duration_us = 0;
};

struct PushReport {
  uint64_t step = 0;
  int64_t bytes = 0;         // written into inference ranks by this rank (trainers), or received
  int64_t writes = 0;        // one-sided writes posted (trainers)
  int64_t gather_bytes = 0;  // source bytes sent to other trainer ranks for gathered units
  int64_t units = 0;         // convert units converted
  double seconds = 0;        // the whole push on this rank
  double convert_seconds = 0;  // summed time converting (overlaps with writing)
  std::vector<PhaseSpan> spans;
};

// Microseconds since the Unix epoch, now.
int64_t WallMicros();

// Records a span from construction to destruction (or Stop) into a report.
class SpanTimer {
 public:
  SpanTimer(std::vector<PhaseSpan>& spans, std::string name)
      : spans_(&spans), name_(std::move(name)), start_(WallMicros()) {}
  ~SpanTimer() { Stop(); }
  void Stop() {
    if (spans_ == nullptr) return;
    spans_->push_back({name_, start_, WallMicros() - start_});
    spans_ = nullptr;
  }

 private:
  std::vector<PhaseSpan>* spans_;
  std::string name_;
  int64_t start_;
};

}  // namespace weightsync::agent
