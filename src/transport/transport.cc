#include "transport/transport.h"

#include "transport/cuda_ipc_transport.h"
#include "transport/local_transport.h"
#include "transport/ucx_transport.h"

namespace weightsync::transport {

Result<TransportOptions> OptionsFromConfig(const Config& config, int32_t rank) {
  TransportOptions options;
  options.self = CurrentProcessIdentity(rank);
  WS_ASSIGN_OR_RETURN(options.max_in_flight, config.GetCount("transport.max_in_flight"));
  if (options.max_in_flight < 1) {
    return InvalidArgument("transport.max_in_flight must be at least 1, not ",
                           options.max_in_flight);
  }
  WS_ASSIGN_OR_RETURN(options.connect_timeout_s, config.GetSeconds("transport.connect_timeout"));
  WS_ASSIGN_OR_RETURN(options.write_timeout_s, config.GetSeconds("transport.write_timeout"));
  WS_ASSIGN_OR_RETURN(options.ucx_library_dir, config.GetString("transport.ucx_library_dir"));
  WS_ASSIGN_OR_RETURN(options.ucx_tls, config.GetString("transport.ucx_tls"));
  WS_ASSIGN_OR_RETURN(options.ucx_net_devices, config.GetString("transport.ucx_net_devices"));
  WS_ASSIGN_OR_RETURN(options.cuda_streams, config.GetCount("transport.cuda_streams"));
  WS_ASSIGN_OR_RETURN(options.cuda_small_write_bytes,
                      config.GetBytes("transport.cuda_small_write_bytes"));
  return options;
}

std::vector<std::string> BackendNames() { return {"local", "ucx", "cuda_ipc"}; }

Result<std::unique_ptr<Transport>> CreateTransport(std::string_view backend,
                                                   const TransportOptions& options) {
  if (backend == "local") return CreateLocalTransport(options);
  if (backend == "ucx") return CreateUcxTransport(options);
  if (backend == "cuda_ipc") return CreateCudaIpcTransport(options);
  return NotFound("no transport backend named '", backend, "' (local, ucx, cuda_ipc)");
}

Capabilities ProbeBackend(std::string_view backend, const TransportOptions& options) {
  auto transport = CreateTransport(backend, options);
  if (!transport.ok()) {
    Capabilities caps;
    caps.unavailable_reason = transport.status().message();
    if (caps.unavailable_reason.rfind("unavailable", 0) != 0) {
      caps.unavailable_reason = "unavailable: " + caps.unavailable_reason;
    }
    return caps;
  }
  return (*transport)->capabilities();
}

}  // namespace weightsync::transport
