// The embedded store: a StoreServer owned by a C handle.
#include <random>

#include "capi/capi_internal.h"
#include "control/store_server.h"

struct ws_store {
  weightsync::capi::ErrorSlot error;
  std::unique_ptr<weightsync::control::StoreServer> server;
  std::string address;
  std::string token;
};

namespace weightsync::capi {
namespace {

// 128 bits from the OS's random source: the token guards the store against other local users.
std::string RandomToken() {
  std::random_device random;
  std::string token;
  for (int i = 0; i < 4; ++i) {
    char part[9];
    std::snprintf(part, sizeof part, "%08x", static_cast<unsigned>(random()));
    token += part;
  }
  return token;
}

}  // namespace
}  // namespace weightsync::capi

using namespace weightsync;  // NOLINT: the C entry points below only

extern "C" {

WS_API ws_status ws_store_start(const char* host, uint16_t port, const char* token,
                                ws_store** out) {
  return capi::Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_ASSIGN_OR_RETURN(Config config, capi::GlobalConfig());
    WS_ASSIGN_OR_RETURN(control::StoreServerOptions options,
                        control::StoreServerOptions::FromConfig(config));
    if (host != nullptr) options.host = host;
    options.port = port;
    options.token = (token == nullptr || *token == '\0') ? capi::RandomToken() : token;
    auto store = std::make_unique<ws_store>();
    store->token = options.token;
    WS_ASSIGN_OR_RETURN(store->server, control::StoreServer::Start(options));
    store->address = store->server->address();
    *out = store.release();
    return Status::Ok();
  });
}

WS_API const char* ws_store_address(const ws_store* store) {
  return store == nullptr ? "" : store->address.c_str();
}
WS_API const char* ws_store_token(const ws_store* store) {
  return store == nullptr ? "" : store->token.c_str();
}
WS_API const char* ws_store_last_error(const ws_store* store) {
  return store == nullptr ? "" : store->error.Get();
}

WS_API void ws_store_stop(ws_store* store) {
  if (store == nullptr) return;
  try {
    store->server->Stop();
  } catch (...) {  // Stop reports nothing; a throw here must still not cross the boundary
  }
  delete store;
}

}  // extern "C"
