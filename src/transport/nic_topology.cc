#include "transport/nic_topology.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace weightsync::transport {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Components(std::string_view path) {
  // Only the part from the first "pciDDDD:BB" root complex down counts.
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  auto root = std::find_if(parts.begin(), parts.end(),
                           [](const std::string& p) { return p.rfind("pci", 0) == 0; });
  return {root, parts.end()};
}

std::string Canonical(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  return ec ? std::string() : c.string();
}

}  // namespace

std::string NormalizePciBusId(std::string_view bus_id) {
  std::string id(bus_id);
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // Domain: keep the last four hex digits ("00000000:" -> "0000:"); add one when missing.
  const size_t colons = static_cast<size_t>(std::count(id.begin(), id.end(), ':'));
  if (colons == 1) return "0000:" + id;
  const size_t first = id.find(':');
  if (first > 4) id = id.substr(first - 4);
  return id;
}

std::vector<RdmaNic> ListRdmaNics(const std::string& sysfs_root) {
  std::vector<RdmaNic> nics;
  std::error_code ec;
  fs::path dir = fs::path(sysfs_root) / "class" / "infiniband";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    RdmaNic nic;
    nic.name = entry.path().filename().string();
    nic.pci_path = Canonical(entry.path() / "device");
    if (nic.pci_path.empty()) continue;  // a software device (rxe on a netdev) has no PCI path
    std::vector<int> active_ports;
    std::error_code port_ec;
    for (const auto& port : fs::directory_iterator(entry.path() / "ports", port_ec)) {
      std::ifstream state(port.path() / "state");
      std::string text;
      std::getline(state, text);
      if (text.find("ACTIVE") != std::string::npos) {
        active_ports.push_back(std::atoi(port.path().filename().c_str()));
      }
    }
    if (!active_ports.empty()) {
      nic.active = true;
      nic.port = *std::min_element(active_ports.begin(), active_ports.end());
    }
    nics.push_back(std::move(nic));
  }
  std::sort(nics.begin(), nics.end(),
            [](const RdmaNic& a, const RdmaNic& b) { return a.name < b.name; });
  return nics;
}

int PciDistance(std::string_view a, std::string_view b) {
  const auto pa = Components(a);
  const auto pb = Components(b);
  size_t common = 0;
  while (common < pa.size() && common < pb.size() && pa[common] == pb[common]) ++common;
  const int hops = static_cast<int>((pa.size() - common) + (pb.size() - common));
  return common == 0 ? 1000 + hops : hops;
}

Result<NicChoice> ChooseClosestNic(const std::string& sysfs_root, std::string_view gpu_bus_id) {
  const std::string bus_id = NormalizePciBusId(gpu_bus_id);
  const std::string gpu_path =
      Canonical(fs::path(sysfs_root) / "bus" / "pci" / "devices" / bus_id);
  if (gpu_path.empty()) {
    return NotFound("GPU ", bus_id, " is not under ", sysfs_root, "/bus/pci/devices");
  }
  const auto nics = ListRdmaNics(sysfs_root);
  if (nics.empty()) return NotFound("no RDMA NIC under ", sysfs_root, "/class/infiniband");
  std::vector<std::pair<int, const RdmaNic*>> ranked;
  for (const auto& nic : nics) ranked.emplace_back(PciDistance(gpu_path, nic.pci_path), &nic);
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) {
    if (x.first != y.first) return x.first < y.first;
    return x.second->active && !y.second->active;
  });
  NicChoice choice{*ranked[0].second, ranked[0].first, ""};
  choice.reason = StrCat(choice.nic.UcxDevice(), " is ", choice.distance, " PCI hops from GPU ",
                         bus_id, choice.nic.active ? "" : " (no ACTIVE port)");
  if (ranked.size() > 1) {
    choice.reason += StrCat(" (next: ", ranked[1].second->name, " at ", ranked[1].first, ")");
  }
  return choice;
}

}  // namespace weightsync::transport
