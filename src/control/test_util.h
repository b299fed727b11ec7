// Helpers shared by the control-plane tests: a loopback store with a known token, and clients.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "control/store_client.h"
#include "control/store_server.h"

namespace weightsync::control::testing {

inline constexpr char kTestToken[] = "test-token-0123456789";

inline std::unique_ptr<StoreServer> StartTestStore(double io_timeout_s = 2,
                                                   double handshake_timeout_s = 2) {
  StoreServerOptions options;
  options.host = "127.0.0.1";  // tests never listen beyond loopback
  options.token = kTestToken;
  options.io_timeout_s = io_timeout_s;
  options.handshake_timeout_s = handshake_timeout_s;
  auto server = StoreServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

inline StoreClientOptions TestClientOptions(const std::string& address,
                                            const std::string& token = kTestToken) {
  StoreClientOptions options;
  options.address = address;
  options.token = token;
  return options;
}

inline std::unique_ptr<StoreClient> ConnectTestClient(const std::string& address) {
  auto client = StoreClient::Connect(TestClientOptions(address), DeadlineIn(5));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(*client) : nullptr;
}

inline bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace weightsync::control::testing
