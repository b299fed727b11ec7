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
    {"push.orchestrator", "embedded", ConfigUnits::kString,
     "Who requests each push: embedded (trainer rank 0, as soon as the step is ready), external "
     "(`weightsync orchestrate` or another store client answers the trainer's offer) or files "
     "(trainer rank 0 waits for broadcasts/step_N/TRANSFER_READY under push.marker_dir)."},
    {"push.pause_timeout", "60s", ConfigUnits::kSeconds,
     "From the start of a push until every inference rank is paused (the request, the external "
     "orchestrator's answer or the TRANSFER_READY marker, pause hooks, the pause barrier)."},
    {"push.transfer_timeout", "300s", ConfigUnits::kSeconds,
     "How long the data phase of a push may take, until every rank has finished its transfer."},
    {"push.commit_timeout", "60s", ConfigUnits::kSeconds,
     "From the end of the transfer until every rank reached the commit barrier (post-update hooks "
     "included)."},
    {"push.marker_dir", "", ConfigUnits::kString,
     "Directory of prime-rl style file markers: trainer rank 0 writes broadcasts/step_N/STABLE "
     "there; empty writes no markers."},
    {"admin.listen", "127.0.0.1:0", ConfigUnits::kString,
     "HOST:PORT of an inference agent's HTTP admin endpoint (/status, /pause, /resume); port 0 "
     "picks a free port. Loopback unless set otherwise."},
    {"admin.io_timeout", "5s", ConfigUnits::kSeconds,
     "How long the HTTP admin endpoint waits for a request to arrive or a reply to be read."},
});

}  // namespace

std::span<const ConfigOption> ConfigTable() { return kTable; }

}  // namespace weightsync
