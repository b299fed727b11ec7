// The store's side of the authentication handshake (control/auth.h), run for every new connection
// by the store's ConnectionGate (control/connection_gate.h): the hello on accept, then the check of
// the client's answer. A client that proves the token is offered to `admit`, unless `may_admit`
// refuses it (the store is full), in which case it gets that error instead of the server's proof.
// Wrong tokens are logged naming the peer.
//
// Threading: called on the gate's thread only.
#pragma once

#include <functional>
#include <string>

#include "control/connection_gate.h"

namespace weightsync::control {

class StoreHandshake final : public GateProtocol {
 public:
  struct Hooks {
    std::function<Status()> may_admit;
    std::function<void(UniqueFd fd, std::string peer)> admit;
  };
  StoreHandshake(std::string name, std::string token, Hooks hooks)
      : name_(std::move(name)), token_(std::move(token)), hooks_(std::move(hooks)) {}

  Result<std::pair<std::string, std::string>> Greet() override;
  Result<size_t> FirstMessageSize(std::string_view received) override;
  void Take(UniqueFd fd, std::string peer, std::string message, std::string nonce) override;

 private:
  const std::string name_;
  const std::string token_;
  const Hooks hooks_;
};

}  // namespace weightsync::control
