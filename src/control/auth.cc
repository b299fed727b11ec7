#include "control/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "control/store_protocol.h"
#include "control/wire.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

constexpr std::string_view kClientLabel = "weightsync-control client v1";
constexpr std::string_view kServerLabel = "weightsync-control server v1";

Status RefusedByServer(const Frame& frame) {
  auto response = DecodeResponse(frame);
  if (!response.ok()) return response.status();
  if (response->code == StatusCode::kOk) return DataLoss("server sent OK instead of a handshake");
  return Status(response->code, response->message);
}

}  // namespace

Result<std::string> RandomNonce() {
  std::string nonce(kNonceSize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), kNonceSize) != 1) {
    return Internal("RAND_bytes failed: no randomness for the handshake nonce");
  }
  return nonce;
}

std::string HandshakeMac(std::string_view token, std::string_view label,
                         std::string_view server_nonce, std::string_view client_nonce) {
  std::string message;
  message.append(label).append(server_nonce).append(client_nonce);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const void* key = token.empty() ? &kEmpty : static_cast<const void*>(token.data());
  HMAC(EVP_sha256(), key, static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_size);
  return std::string(reinterpret_cast<char*>(mac), mac_size);
}

std::string ClientMac(std::string_view token, std::string_view server_nonce,
                      std::string_view client_nonce) {
  return HandshakeMac(token, kClientLabel, server_nonce, client_nonce);
}

std::string ServerMac(std::string_view token, std::string_view server_nonce,
                      std::string_view client_nonce) {
  return HandshakeMac(token, kServerLabel, server_nonce, client_nonce);
}

bool MacsEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string ServerHelloFrame(std::string_view server_nonce) {
  return EncodeFrame(MessageType::kServerHello, server_nonce);
}

Result<std::string> ServerProofFrame(std::string_view token, std::string_view server_nonce,
                                     const Frame& client_hello) {
  if (client_hello.type != MessageType::kClientHello) {
    return DataLoss("expected a client-hello, got a ", MessageTypeName(client_hello.type),
                    " message");
  }
  WireReader reader(client_hello.payload);
  WS_ASSIGN_OR_RETURN(std::string client_nonce, reader.Raw(kNonceSize));
  WS_ASSIGN_OR_RETURN(std::string client_mac, reader.Raw(kMacSize));
  WS_RETURN_IF_ERROR(reader.ExpectEnd());
  if (!MacsEqual(client_mac, ClientMac(token, server_nonce, client_nonce))) {
    return Unauthenticated(
        "authentication failed: the store refused this client's token (wrong or missing token)");
  }
  return EncodeFrame(MessageType::kServerProof, ServerMac(token, server_nonce, client_nonce));
}

std::string RefusalFrame(const Status& status) {
  return EncodeFrame(MessageType::kResponse,
                     EncodeResponse(StoreResponse{status.code(), status.message(), ""}));
}

Status ClientHandshake(int fd, std::string_view token, Deadline deadline) {
  WS_ASSIGN_OR_RETURN(Frame hello, ReceiveFrame(fd, kMaxHandshakePayload, deadline));
  if (hello.type == MessageType::kResponse) return RefusedByServer(hello);
  if (hello.type != MessageType::kServerHello || hello.payload.size() != kNonceSize) {
    return DataLoss("expected a server-hello, got a ", MessageTypeName(hello.type), " message");
  }
  const std::string& server_nonce = hello.payload;
  WS_ASSIGN_OR_RETURN(std::string client_nonce, RandomNonce());
  std::string answer = client_nonce + ClientMac(token, server_nonce, client_nonce);
  WS_RETURN_IF_ERROR(SendFrame(fd, MessageType::kClientHello, answer, deadline));
  auto proof = ReceiveFrame(fd, kMaxHandshakePayload, deadline);
  if (!proof.ok()) {
    if (proof.status().code() == StatusCode::kUnavailable) {
      return Unauthenticated(
          "authentication failed: the store closed the connection during the "
          "handshake (wrong or missing token?)");
    }
    return proof.status();
  }
  if (proof->type == MessageType::kResponse) return RefusedByServer(*proof);
  if (proof->type != MessageType::kServerProof ||
      !MacsEqual(proof->payload, ServerMac(token, server_nonce, client_nonce))) {
    return Unauthenticated(
        "authentication failed: the store did not prove it knows the token "
        "(a different token, or not the store you meant)");
  }
  return Status::Ok();
}

Result<std::string> LoadStoreToken(std::string_view token_file) {
  std::string token;
  std::string source;
  if (!token_file.empty()) {
    std::string path(token_file);
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFound("cannot read store token file ", path);
    std::ostringstream contents;
    contents << in.rdbuf();
    token = contents.str();
    source = StrCat("token file ", path);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      Log(LogLevel::kWarning, "store token file ", path,
          " is readable by group or others; chmod 600 it");
    }
  } else if (const char* env = std::getenv(kStoreTokenEnv); env != nullptr) {
    token = env;
    source = StrCat("$", kStoreTokenEnv);
  } else {
    return InvalidArgument("no store token: pass --token-file FILE or set $", kStoreTokenEnv);
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) return InvalidArgument("store token from ", source, " is empty");
  return token;
}

}  // namespace weightsync::control
