// Every options struct initialises its defaults from the config table (DefaultSeconds(...) and the
// like, so each is written once); these tie the struct to the table: a default-constructed struct
// equals the one FromConfig reads from the table's defaults, field by field. A misspelt name in an
// initialiser (which gives 0 or "") or a FromConfig reading another option fails here.
#include <gtest/gtest.h>

#include "agent/agent_options.h"
#include "control/store_server.h"

namespace weightsync::agent {
namespace {

TEST(OptionsDefaults, AgentOptionsAreTheTables) {
  const AgentOptions built;
  auto read = AgentOptions::FromConfig(Config::Defaults());
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(built.transport, read->transport);
  EXPECT_EQ(built.mode, read->mode);
  EXPECT_EQ(built.join_timeout_s, read->join_timeout_s);
  EXPECT_EQ(built.convert_threads, read->convert_threads);
  EXPECT_EQ(built.store.max_message_size, read->store.max_message_size);
  EXPECT_EQ(built.push.pause_timeout_s, read->push.pause_timeout_s);
  EXPECT_EQ(built.push.transfer_timeout_s, read->push.transfer_timeout_s);
  EXPECT_EQ(built.push.commit_timeout_s, read->push.commit_timeout_s);
  EXPECT_EQ(built.push.orchestrator, read->push.orchestrator);
  EXPECT_EQ(built.push.marker_dir, read->push.marker_dir);
  EXPECT_EQ(built.admin.listen, read->admin.listen);
  EXPECT_EQ(built.admin.io_timeout_s, read->admin.io_timeout_s);
  EXPECT_EQ(built.liveness.heartbeat_interval_s, read->liveness.heartbeat_interval_s);
  EXPECT_EQ(built.liveness.liveness_timeout_s, read->liveness.liveness_timeout_s);
  const transport::TransportOptions& t = built.transport_options;
  EXPECT_EQ(t.max_in_flight, read->transport_options.max_in_flight);
  EXPECT_EQ(t.connect_timeout_s, read->transport_options.connect_timeout_s);
  EXPECT_EQ(t.write_timeout_s, read->transport_options.write_timeout_s);
  EXPECT_EQ(t.ucx_library_dir, read->transport_options.ucx_library_dir);
  EXPECT_EQ(t.ucx_tls, read->transport_options.ucx_tls);
  EXPECT_EQ(t.ucx_net_devices, read->transport_options.ucx_net_devices);
  EXPECT_EQ(t.cuda_streams, read->transport_options.cuda_streams);
  EXPECT_EQ(t.cuda_small_write_bytes, read->transport_options.cuda_small_write_bytes);
  EXPECT_EQ(built.plan.staging_budget, read->plan.staging_budget);
  EXPECT_EQ(built.plan.unit_bytes, read->plan.unit_bytes);
  EXPECT_EQ(built.plan.min_shard_bytes, read->plan.min_shard_bytes);
  EXPECT_EQ(built.plan.write_cost_bytes, read->plan.write_cost_bytes);
  EXPECT_EQ(built.plan.rebalance_tolerance_percent, read->plan.rebalance_tolerance_percent);
  // Spot checks that the table, not a zero from a misspelt name, is what both agree on.
  EXPECT_EQ(built.push.transfer_timeout_s, 300);
  EXPECT_EQ(built.admin.listen, "127.0.0.1:0");
  EXPECT_EQ(built.plan.staging_budget, int64_t{4} << 30);
}

TEST(OptionsDefaults, StoreServerOptionsAreTheTables) {
  const control::StoreServerOptions built;
  auto read = control::StoreServerOptions::FromConfig(Config::Defaults());
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(built.max_message_size, read->max_message_size);
  EXPECT_EQ(built.handshake_timeout_s, read->handshake_timeout_s);
  EXPECT_EQ(built.io_timeout_s, read->io_timeout_s);
  EXPECT_EQ(built.max_connections, read->max_connections);
  EXPECT_EQ(built.max_handshakes, read->max_handshakes);
  EXPECT_EQ(built.max_pending_bytes, read->max_pending_bytes);
  EXPECT_EQ(built.max_connections, 1024);
}

}  // namespace
}  // namespace weightsync::agent
