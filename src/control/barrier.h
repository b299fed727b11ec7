// Barrier: a named, reusable barrier over every participant of a job.
//
// Each use names a generation (typically the training step). The generation is part of every key
// the barrier touches, so arrivals for step N-1 can never satisfy the barrier for step N: the bug
// of barriers that only the first update honoured cannot happen here. A participant that arrives
// at generation N while another is still at N-1 simply waits until everyone reaches N (or the
// deadline passes). At the deadline every waiter fails with kDeadlineExceeded listing the ranks
// that did not arrive; with a LivenessWatcher attached to the Rendezvous, a dead participant fails
// the barrier early (kAborted "peer trainer 2 died ...").
//
// Threading: one thread per Barrier object; it uses the Rendezvous's StoreClient during calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "control/rendezvous.h"

namespace weightsync::control {

class Barrier {
 public:
  // `name`: [A-Za-z0-9._-]{1,128}; checked on first use.
  Barrier(const Rendezvous& rendezvous, std::string name)
      : rendezvous_(rendezvous), name_(std::move(name)) {}

  // Arrives at `generation` and waits until every participant has arrived at it.
  Status Arrive(uint64_t generation, Deadline deadline);
  // The same, but the wait also fails (kAborted, with the key's value) as soon as `cancel_key` is
  // set: how the push protocol stops every rank of a step when one rank reports a failure.
  Status Arrive(uint64_t generation, Deadline deadline, std::string_view cancel_key);
  // Arrives at the generation after the last one this object used (0 at first).
  Status ArriveNext(Deadline deadline);
  // Deletes the store keys of `generation`. Only once every participant has left it (for example
  // after all of them arrived at a later generation): a long job would otherwise keep every
  // generation's keys in the store.
  Status Forget(uint64_t generation, Deadline deadline);

  const std::string& name() const { return name_; }

 private:
  const Rendezvous& rendezvous_;
  const std::string name_;
  std::optional<uint64_t> last_generation_;
};

}  // namespace weightsync::control
