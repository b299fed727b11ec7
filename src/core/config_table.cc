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
});

}  // namespace

std::span<const ConfigOption> ConfigTable() { return kTable; }

}  // namespace weightsync
