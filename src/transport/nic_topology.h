// Choosing the RDMA NIC closest to a GPU from the PCI topology in sysfs.
//
// The seed's largest operational fix was pinning each GPU to the NIC on its own PCI switch
// (4.8 -> 7.5 GB/s per rank, barrier 8 s -> 0.8 s). Here the distance between two PCI functions
// is the number of bridges between them through their closest common ancestor, read from the
// canonical sysfs paths (/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/...): a NIC and GPU
// under one switch are 4 hops apart, under one root port more, under different root complexes
// (often different sockets) farthest. The sysfs root is a parameter so tests use a fake tree.
//
// Threading: free functions over the file system; no state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "weightsync/status.h"

namespace weightsync::transport {

struct RdmaNic {
  std::string name;      // "mlx5_0"
  std::string pci_path;  // canonical device path under <root>/devices
  int port = 1;          // first ACTIVE port, else 1
  bool active = false;   // some port reports ACTIVE
  std::string UcxDevice() const { return name + ":" + std::to_string(port); }
};

// "00000000:1B:00.0" (nvidia-smi, CUDA) -> "0000:1b:00.0" (sysfs).
std::string NormalizePciBusId(std::string_view bus_id);

// Every device in <root>/class/infiniband, sorted by name; empty when there is none.
std::vector<RdmaNic> ListRdmaNics(const std::string& sysfs_root);

// Bridges between two canonical PCI device paths; a large number (1000 + hops) when they sit under
// different root complexes.
int PciDistance(std::string_view a, std::string_view b);

struct NicChoice {
  RdmaNic nic;
  int distance = 0;
  std::string reason;  // "mlx5_2:1 is 4 PCI hops from GPU 0000:1b:00.0 (next: mlx5_0 at 8)"
};

// The NIC closest to the GPU (ties: active first, then name). kNotFound when there is no RDMA NIC
// or the GPU is not in sysfs.
Result<NicChoice> ChooseClosestNic(const std::string& sysfs_root, std::string_view gpu_bus_id);

}  // namespace weightsync::transport
