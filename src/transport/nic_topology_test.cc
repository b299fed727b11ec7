// NIC selection on a fake sysfs tree: two sockets, each with a PCI switch holding two GPUs and a
// NIC, and a third NIC on socket 0's root port (not behind the switch).
#include "transport/nic_topology.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace weightsync::transport {
namespace {

namespace fs = std::filesystem;

class FakeSysfs {
 public:
  FakeSysfs() {
    root_ = fs::temp_directory_path() / ("ws_sysfs_" + std::to_string(getpid()));
    fs::remove_all(root_);
    // socket 0: root port 00:01.0 -> switch 01:00.0 -> downstream ports 02:0x.0 -> endpoints
    Device("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0", "0000:03:00.0");
    Device("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:04:00.0", "0000:04:00.0");
    Nic("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:02.0/0000:05:00.0", "mlx5_0", true);
    Nic("pci0000:00/0000:00:02.0/0000:06:00.0", "mlx5_1", true);
    // socket 1
    Device("pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0/0000:83:00.0", "0000:83:00.0");
    Nic("pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:01.0/0000:84:00.0", "mlx5_2", false);
  }
  ~FakeSysfs() { fs::remove_all(root_); }
  std::string root() const { return root_.string(); }

 private:
  fs::path Device(const std::string& path, const std::string& bus_id) {
    const fs::path dev = root_ / "devices" / path;
    fs::create_directories(dev);
    fs::create_directories(root_ / "bus/pci/devices");
    fs::create_directory_symlink(dev, root_ / "bus/pci/devices" / bus_id);
    return dev;
  }
  void Nic(const std::string& path, const std::string& name, bool active) {
    const fs::path dev = Device(path, path.substr(path.rfind('/') + 1));
    const fs::path ib = root_ / "class/infiniband" / name;
    fs::create_directories(ib / "ports/1");
    fs::create_directory_symlink(dev, ib / "device");
    std::ofstream(ib / "ports/1/state") << (active ? "4: ACTIVE\n" : "1: DOWN\n");
  }
  fs::path root_;
};

TEST(NicTopologyTest, NormalizesBusIds) {
  EXPECT_EQ(NormalizePciBusId("00000000:1B:00.0"), "0000:1b:00.0");
  EXPECT_EQ(NormalizePciBusId("0000:1b:00.0"), "0000:1b:00.0");
  EXPECT_EQ(NormalizePciBusId("1B:00.0"), "0000:1b:00.0");
}

TEST(NicTopologyTest, CountsBridges) {
  const std::string a = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0";
  const std::string b = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:02.0/0000:05:00.0";
  const std::string c = "/sys/devices/pci0000:00/0000:00:02.0/0000:06:00.0";
  const std::string d = "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0";
  EXPECT_EQ(PciDistance(a, a), 0);
  EXPECT_EQ(PciDistance(a, b), 4);   // through the shared switch
  EXPECT_EQ(PciDistance(a, c), 6);   // through the root complex
  EXPECT_GE(PciDistance(a, d), 1000);  // other root complex (socket)
}

TEST(NicTopologyTest, ListsNicsWithPorts) {
  FakeSysfs sysfs;
  const auto nics = ListRdmaNics(sysfs.root());
  ASSERT_EQ(nics.size(), 3u);
  EXPECT_EQ(nics[0].name, "mlx5_0");
  EXPECT_TRUE(nics[0].active);
  EXPECT_EQ(nics[0].UcxDevice(), "mlx5_0:1");
  EXPECT_FALSE(nics[2].active);
}

TEST(NicTopologyTest, PicksTheNicUnderTheGpusSwitch) {
  FakeSysfs sysfs;
  for (const char* gpu : {"0000:03:00.0", "00000000:04:00.0"}) {
    auto choice = ChooseClosestNic(sysfs.root(), gpu);
    ASSERT_TRUE(choice.ok()) << choice.status().ToString();
    EXPECT_EQ(choice->nic.name, "mlx5_0") << gpu;
    EXPECT_EQ(choice->distance, 4);
    EXPECT_NE(choice->reason.find("mlx5_1"), std::string::npos) << choice->reason;
  }
  // Socket 1's GPU takes its own switch's NIC even with its port down, over a far active one.
  auto far = ChooseClosestNic(sysfs.root(), "0000:83:00.0");
  ASSERT_TRUE(far.ok());
  EXPECT_EQ(far->nic.name, "mlx5_2");
}

TEST(NicTopologyTest, MissingGpuOrNicsIsNotFound) {
  FakeSysfs sysfs;
  EXPECT_EQ(ChooseClosestNic(sysfs.root(), "0000:ee:00.0").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(ListRdmaNics("/nonexistent").empty());
  EXPECT_EQ(ChooseClosestNic("/nonexistent", "0000:03:00.0").status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace weightsync::transport
