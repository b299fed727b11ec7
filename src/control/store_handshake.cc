#include "control/store_handshake.h"

#include "control/auth.h"
#include "control/wire.h"
#include "core/log.h"

namespace weightsync::control {

Result<std::pair<std::string, std::string>> StoreHandshake::Greet() {
  WS_ASSIGN_OR_RETURN(std::string nonce, RandomNonce());
  std::string hello = ServerHelloFrame(nonce);
  return std::make_pair(std::move(hello), std::move(nonce));
}

Result<size_t> StoreHandshake::FirstMessageSize(std::string_view received) {
  if (received.size() < kFrameHeaderSize) return kFrameHeaderSize;
  WS_ASSIGN_OR_RETURN(FrameHeader header, DecodeFrameHeader(received.substr(0, kFrameHeaderSize),
                                                            kMaxHandshakePayload));
  return kFrameHeaderSize + header.payload_size;
}

void StoreHandshake::Take(UniqueFd fd, std::string peer, std::string message, std::string nonce) {
  Result<Frame> hello = DecodeFrame(message, kMaxHandshakePayload);
  Result<std::string> proof =
      hello.ok() ? ServerProofFrame(token_, nonce, *hello) : Result<std::string>(hello.status());
  if (proof.status().code() == StatusCode::kUnauthenticated) {
    Log(LogLevel::kWarning, name_, ": authentication failed for peer ", peer,
        " (wrong or missing token); connection closed");
    (void)SendNow(fd.get(), RefusalFrame(proof.status()));  // best effort: the client learns why
    return;
  }
  if (!proof.ok()) {
    Log(LogLevel::kWarning, name_, ": handshake with ", peer,
        " failed, connection closed: ", proof.status().ToString());
    return;
  }
  if (Status room = hooks_.may_admit(); !room.ok()) {
    Log(LogLevel::kWarning, name_, ": refusing ", peer, ": ", room.message());
    (void)SendNow(fd.get(), RefusalFrame(room));
    return;
  }
  if (!SendNow(fd.get(), *proof)) return;
  hooks_.admit(std::move(fd), std::move(peer));
}

}  // namespace weightsync::control
