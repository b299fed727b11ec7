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
    {"transport.max_in_flight", "256", ConfigUnits::kCount,
     "Writes a transport keeps outstanding per peer before posting blocks (the seed wedged UCX "
     "posting ~10k at once)."},
    {"transport.connect_timeout", "30s", ConfigUnits::kSeconds,
     "Deadline for connecting to a peer and importing its regions."},
    {"transport.write_timeout", "120s", ConfigUnits::kSeconds,
     "Deadline for posting one batch of writes and flushing it; a dead peer fails sooner."},
    {"transport.ucx_tls", "", ConfigUnits::kString,
     "UCX transports (UCX_TLS), e.g. rc,cuda_copy or tcp; empty leaves UCX's choice or UCX_TLS."},
    {"transport.ucx_net_devices", "", ConfigUnits::kString,
     "UCX network devices (UCX_NET_DEVICES), e.g. mlx5_2:1; empty picks the RDMA NIC closest to "
     "the GPU on the PCI topology, or leaves UCX's choice when no GPU is given."},
    {"transport.cuda_streams", "4", ConfigUnits::kCount,
     "CUDA streams the cuda_ipc transport spreads large copies over (copy engines)."},
});

}  // namespace

std::span<const ConfigOption> ConfigTable() { return kTable; }

}  // namespace weightsync
