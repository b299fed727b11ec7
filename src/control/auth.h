// Mutual authentication of store connections with a shared secret (the store token).
//
// Before any other message, on every connection:
//   1. server -> client  kServerHello   server_nonce (32 random bytes)
//   2. client -> server  kClientHello   client_nonce (32 random bytes),
//                                       HMAC-SHA256(token, "weightsync-control client v1" ||
//                                                          server_nonce || client_nonce)
//   3. server -> client  kServerProof   HMAC-SHA256(token, "weightsync-control server v1" ||
//                                                          server_nonce || client_nonce)
//      or, when the client's MAC is wrong, kResponse(UNAUTHENTICATED) and the server closes.
// The server's fresh nonce stops a recorded client answer from being replayed; the client's fresh
// nonce does the same for the server's proof, so a fake store that does not know the token is
// detected by the client. The two labels differ so one side's MAC is never valid for the other.
// MACs are compared with CRYPTO_memcmp (constant time). This authenticates the two ends; it does
// not encrypt or sign later messages, so the store belongs on loopback or a trusted network.
//
// Threading: plain functions; each handshake uses one socket from one thread.
#pragma once

#include <string>
#include <string_view>

#include "control/deadline.h"
#include "control/wire.h"
#include "weightsync/status.h"

namespace weightsync::control {

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;
inline constexpr char kStoreTokenEnv[] = "WEIGHTSYNC_STORE_TOKEN";

Result<std::string> RandomNonce();
// HMAC-SHA256(token, label || server_nonce || client_nonce), 32 bytes.
std::string HandshakeMac(std::string_view token, std::string_view label,
                         std::string_view server_nonce, std::string_view client_nonce);
std::string ClientMac(std::string_view token, std::string_view server_nonce,
                      std::string_view client_nonce);
std::string ServerMac(std::string_view token, std::string_view server_nonce,
                      std::string_view client_nonce);
// Constant-time for equal sizes (CRYPTO_memcmp); different sizes are unequal at once.
bool MacsEqual(std::string_view a, std::string_view b);

// The server half as steps, for a server that does its own non-blocking I/O (control/
// store_handshake.h): the hello frame to send first, then the check of the client's answer, which
// gives the proof frame to send back, kUnauthenticated for a wrong MAC, or kDataLoss for a
// malformed answer.
std::string ServerHelloFrame(std::string_view server_nonce);
Result<std::string> ServerProofFrame(std::string_view token, std::string_view server_nonce,
                                     const Frame& client_hello);
// A kResponse frame carrying `status`: how the server refuses a client during the handshake.
std::string RefusalFrame(const Status& status);
// The client half; kUnauthenticated ("authentication failed: ...") when either side is refused.
Status ClientHandshake(int fd, std::string_view token, Deadline deadline);

// The store token: the contents of `token_file` when it is not empty (trailing whitespace
// stripped), else $WEIGHTSYNC_STORE_TOKEN; an error when neither gives a non-empty token. Warns
// when the file is readable by group or others.
Result<std::string> LoadStoreToken(std::string_view token_file);

}  // namespace weightsync::control
