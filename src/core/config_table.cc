// Every option weightsync reads, grouped by layer. Add a row here when a layer grows a knob; the
// name's prefix is the layer that reads it.
#include "core/config.h"

#include <array>

namespace weightsync {
namespace {

constexpr auto kTable = std::to_array<ConfigOption>({
    {"log.level", "info", ConfigUnits::kString,
     "Lowest level of messages passed to the log sink: debug, info, warning, error, off (the "
     "command line's --log-level, when given, wins)."},
    {"convert.threads", "0", ConfigUnits::kCount,
     "Threads used to convert on the CPU; 0 uses every core."},
    {"convert.max_shard_size", "5GiB", ConfigUnits::kBytes,
     "Largest output .safetensors file `weightsync convert` writes before starting another."},
    {"control.connect_timeout", "30s", ConfigUnits::kSeconds,
     "How long a store client keeps retrying to reach the store (it may start later)."},
    {"control.handshake_timeout", "5s", ConfigUnits::kSeconds,
     "How long the store gives a new connection to finish the authentication handshake."},
    {"control.max_handshakes", "128", ConfigUnits::kCount,
     "Most connections the store holds in the authentication handshake at once; one more closes "
     "the oldest. They never count against control.max_connections."},
    {"control.io_timeout", "10s", ConfigUnits::kSeconds,
     "Once a control message starts arriving (or a reply is being written), how long it may take; "
     "a slower peer is disconnected."},
    {"control.heartbeat_interval", "1s", ConfigUnits::kSeconds,
     "How often each participant writes its heartbeat into the store."},
    {"control.liveness_timeout", "5s", ConfigUnits::kSeconds,
     "A participant whose heartbeat has not changed for this long is reported as dead; a closed "
     "store connection is reported at once."},
    {"control.max_message_size", "64MiB", ConfigUnits::kBytes,
     "Largest control message (store request or reply) accepted; larger ones close the "
     "connection."},
    {"control.max_connections", "1024", ConfigUnits::kCount,
     "Most authenticated connections the store serves at once (one thread each); more are "
     "refused."},
    {"control.max_pending_bytes", "256MiB", ConfigUnits::kBytes,
     "Most memory the store holds for messages still arriving, all connections together (buffers "
     "grow as bytes arrive); a message that would exceed it closes its connection. At least "
     "control.max_message_size."},
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
    {"transport.max_in_flight", "256", ConfigUnits::kCount,
     "Writes a transport keeps outstanding per peer before posting blocks (the seed wedged UCX "
     "posting ~10k at once)."},
    {"transport.connect_timeout", "30s", ConfigUnits::kSeconds,
     "Deadline for connecting to a peer and importing its regions."},
    {"transport.write_timeout", "120s", ConfigUnits::kSeconds,
     "Deadline for posting one batch of writes and flushing it; a dead peer fails sooner."},
    {"transport.ucx_library_dir", "", ConfigUnits::kString,
     "Folder holding the libucp.so.0 (with its libucs/libuct/libucm and ucx/ modules) the ucx "
     "transport loads, e.g. the lib folder of RAPIDS' CUDA-enabled libucx-cu13 wheel; empty loads "
     "libucp.so.0 from the loader's search path."},
    {"transport.ucx_tls", "", ConfigUnits::kString,
     "UCX transports (UCX_TLS), e.g. rc,cuda_copy or tcp; empty leaves UCX's choice or UCX_TLS."},
    {"transport.ucx_net_devices", "", ConfigUnits::kString,
     "UCX network devices (UCX_NET_DEVICES), e.g. mlx5_2:1; empty picks the RDMA NIC closest to "
     "the GPU on the PCI topology, or leaves UCX's choice when no GPU is given."},
    {"transport.cuda_streams", "4", ConfigUnits::kCount,
     "CUDA streams the cuda_ipc transport spreads large copies over (copy engines)."},
    {"transport.cuda_small_write_bytes", "256KiB", ConfigUnits::kBytes,
     "cuda_ipc writes up to this size are gathered per batch and copied by one kernel launch "
     "(a copy engine pays microseconds per write); larger ones take the copy engines. 0 copies "
     "every write on its own; at most 32MiB."},
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
     "How long the HTTP admin endpoint gives a whole request to arrive (from the connect), and its "
     "reply to be written."},
    {"agent.transport", "auto", ConfigUnits::kString,
     "Transport of the push agents: auto (cuda_ipc between GPU tensors, ucx otherwise), ucx, "
     "cuda_ipc. Every rank of a job must end up with the same one."},
    {"agent.mode", "write", ConfigUnits::kString,
     "write: trainers convert and write straight into inference memory; nccl: trainer rank 0 "
     "broadcasts full tensors and inference ranks convert (the usual baseline)."},
    {"agent.join_timeout", "120s", ConfigUnits::kSeconds,
     "How long an agent waits for every rank to join the job and exchange its regions."},
    {"agent.convert_threads", "0", ConfigUnits::kCount,
     "CPU threads a trainer agent converts with (0: one per hardware thread)."},
});

}  // namespace

std::span<const ConfigOption> ConfigTable() { return kTable; }

}  // namespace weightsync
