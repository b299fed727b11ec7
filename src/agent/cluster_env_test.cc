#include "agent/cluster_env.h"

#include <gtest/gtest.h>

#include <map>

namespace weightsync::agent {
namespace {

Environment Fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ClusterEnv, ReadsEachLauncher) {
  auto torchrun = RankFromEnvironment(Fake({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "3"}}));
  ASSERT_TRUE(torchrun.ok());
  EXPECT_EQ(torchrun->rank, 3);
  EXPECT_EQ(torchrun->world_size, 8);
  EXPECT_EQ(torchrun->local_rank, 3);
  EXPECT_EQ(torchrun->source, "torchrun");
  auto slurm = RankFromEnvironment(Fake({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"},
                                         {"SLURM_LOCALID", "1"}}));
  ASSERT_TRUE(slurm.ok());
  EXPECT_EQ(slurm->source, "slurm");
  EXPECT_EQ(slurm->local_rank, 1);
  auto mpi = RankFromEnvironment(Fake({{"OMPI_COMM_WORLD_RANK", "0"},
                                       {"OMPI_COMM_WORLD_SIZE", "2"}, {"SLURM_PROCID", "5"}}));
  ASSERT_TRUE(mpi.ok());
  EXPECT_EQ(mpi->source, "openmpi");  // mpirun inside an allocation: Open MPI's own ranks win
}

TEST(ClusterEnv, RefusesMissingAndMalformedValues) {
  auto none = RankFromEnvironment(Fake({}));
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("SLURM_PROCID"), std::string::npos);
  auto bad = RankFromEnvironment(Fake({{"RANK", "x"}, {"WORLD_SIZE", "2"}}));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("RANK='x'"), std::string::npos);
  auto out_of_range = RankFromEnvironment(Fake({{"RANK", "2"}, {"WORLD_SIZE", "2"}}));
  EXPECT_EQ(out_of_range.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weightsync::agent
