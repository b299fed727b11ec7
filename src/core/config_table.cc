// Every option weightsync reads, grouped by layer. Add a row here when a layer grows a knob; the
// name's prefix is the layer that reads it.
#include "core/config.h"

#include <array>

namespace weightsync {
namespace {

constexpr auto kTable = std::to_array<ConfigOption>({
    {"log.level", "info", ConfigUnits::kString,
     "Lowest level of messages passed to the log sink: debug, info, warning, error, off."},
    {"convert.threads", "0", ConfigUnits::kCount,
     "Threads used to convert on the CPU; 0 uses every core."},
    {"convert.max_shard_size", "5GiB", ConfigUnits::kBytes,
     "Largest output .safetensors file `weightsync convert` writes before starting another."},
    {"io.max_header_size", "100MiB", ConfigUnits::kBytes,
     "Largest safetensors JSON header accepted; larger headers are refused as malformed."},
    {"control.connect_timeout", "30s", ConfigUnits::kSeconds,
     "How long a store client keeps retrying to reach the store (it may start later), and how long "
     "the store gives a new connection to finish the authentication handshake."},
    {"control.io_timeout", "10s", ConfigUnits::kSeconds,
     "Once a control message starts arriving (or a reply is being written), how long it may take; "
     "a slower peer is disconnected."},
    {"control.rendezvous_timeout", "300s", ConfigUnits::kSeconds,
     "How long Join and each rendezvous round wait for every participant to arrive."},
    {"control.barrier_timeout", "300s", ConfigUnits::kSeconds,
     "How long a barrier waits for every participant to arrive."},
    {"control.heartbeat_interval", "1s", ConfigUnits::kSeconds,
     "How often each participant writes its heartbeat into the store."},
    {"control.liveness_timeout", "5s", ConfigUnits::kSeconds,
     "A participant whose heartbeat has not changed for this long is reported as dead; a closed "
     "store connection is reported at once."},
    {"control.max_message_size", "64MiB", ConfigUnits::kBytes,
     "Largest control message (store request or reply) accepted; larger ones close the "
     "connection."},
    {"control.max_connections", "1024", ConfigUnits::kCount,
     "Most connections the store serves at once (one thread each); more are refused."},
    {"plan.staging_budget", "4GiB", ConfigUnits::kBytes,
     "Staging memory per trainer rank for converted slots: a ring reused within a push."},
    {"plan.unit_bytes", "128MiB", ConfigUnits::kBytes,
     "Largest convert unit (rows of one tensor converted by one rank into one slot); smaller "
     "balances NIC bytes better, larger needs fewer writes."},
    {"plan.min_shard_bytes", "1MiB", ConfigUnits::kBytes,
     "A tensor with fewer bytes than this per trainer rank holding it is gathered to one rank "
     "instead of converted shard by shard (a few large writes instead of many tiny ones)."},
    {"plan.write_cost_bytes", "256KiB", ConfigUnits::kBytes,
     "What one write weighs when balancing trainer ranks, in bytes (posting overhead x NIC rate)."},
    {"plan.rebalance_tolerance", "2", ConfigUnits::kCount,
     "Percent by which a trainer rank may out-load its node's least loaded sender before whole "
     "sharded units move to that rank over NVLink."},
    {"plan.sim.nic_bandwidth", "50GB/s", ConfigUnits::kString,
     "Simulator: NIC rate per GPU and direction (GB/s, Gb/s, TB/s)."},
    {"plan.sim.nvlink_bandwidth", "450GB/s", ConfigUnits::kString,
     "Simulator: NVLink rate per GPU and direction, for gathers inside a trainer node."},
    {"plan.sim.hbm_bandwidth", "3TB/s", ConfigUnits::kString,
     "Simulator: HBM throughput the conversion kernels reach (bytes read + written)."},
    {"plan.sim.write_overhead", "5us", ConfigUnits::kSeconds,
     "Simulator: trainer-side cost of posting one write."},
    {"plan.sim.barrier", "1ms", ConfigUnits::kSeconds,
     "Simulator: the final acknowledgement barrier of a push."},
});

}  // namespace

std::span<const ConfigOption> ConfigTable() { return kTable; }

}  // namespace weightsync
