#include "plan/layout.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

TensorShape2D Tensor(TensorParallelism parallel, int64_t rows, int64_t cols, bool fp8 = true,
                     std::vector<int64_t> sources = {}) {
  TensorShape2D t;
  t.name = "model.layers.0.x.weight";
  t.parallel = parallel;
  t.rows = rows;
  t.cols = cols;
  t.fp8 = fp8;
  t.source_rows = std::move(sources);
  return t;
}

InferenceParallelism Tp(int tp) {
  InferenceParallelism i;
  i.tp = tp;
  return i;
}

TEST(Layout, TorchChunkSemantics) {
  // torch.chunk(10 rows, 4): 3, 3, 3, 1.
  EXPECT_EQ(ChunkRange(10, 4, 0), (Range{0, 3}));
  EXPECT_EQ(ChunkRange(10, 4, 3), (Range{9, 10}));
  // 5 rows over 4 ranks: 2, 2, 1, and the last rank holds nothing.
  EXPECT_EQ(ChunkRange(5, 4, 2), (Range{4, 5}));
  EXPECT_EQ(ChunkRange(5, 4, 3).size(), 0);
  EXPECT_EQ(ChunkOf(10, 4, 9), 3);
}

// Expert ownership in torchtitan's rank order (rank = efsdp_rank * ep + ep_rank), written out by
// hand: the reference the formula is checked against.
TEST(Layout, TrainerExpertOwnershipFollowsTorchtitanRankOrder) {
  TrainerParallelism t;
  t.fsdp = 64;
  t.ep = 8;
  // 256 experts: 32 per ep rank, 4 per rank of its 8 efsdp ranks.
  EXPECT_EQ(t.ExpertShard(256, 0), 0);
  EXPECT_EQ(t.ExpertShard(256, 4), 8);   // ep rank 0, efsdp rank 1
  EXPECT_EQ(t.ExpertShard(256, 37), 9);  // ep rank 1 (experts 32..63), local 5 -> efsdp rank 1
  EXPECT_EQ(t.ExpertShard(256, 32), 1);  // ep rank 1's first expert: rank 1
  EXPECT_EQ(t.ExpertShard(256, 255), 63);
  EXPECT_EQ(t.ExpertsOf(256, 1), (Range{32, 36}));
  EXPECT_EQ(t.ExpertsOf(256, 8), (Range{4, 8}));
}

TEST(Layout, TrainerExpertOwnershipWithHsdpAndEp4) {
  // fsdp=8, ep=4, hsdp=2: a replica's ranks 0..3 are one EP group (efsdp rank 0), 4..7 another.
  // 16 experts: ep rank e holds experts 4e..4e+3, its efsdp ranks 2 each.
  TrainerParallelism t;
  t.fsdp = 8;
  t.ep = 4;
  t.hsdp = 2;
  ASSERT_TRUE(t.Validate().ok());
  const std::vector<Range> want = {{0, 2}, {4, 6}, {8, 10},  {12, 14},
                                   {2, 4}, {6, 8}, {10, 12}, {14, 16}};
  for (int shard = 0; shard < 8; ++shard) {
    EXPECT_EQ(t.ExpertsOf(16, shard), want[shard]) << "shard " << shard;
    for (int64_t e = want[shard].begin; e < want[shard].end; ++e) {
      EXPECT_EQ(t.ExpertShard(16, e), shard) << "expert " << e;
    }
  }
  EXPECT_EQ(t.world(), 16);  // replica 1 holds the same experts at global ranks 8..15
}

TEST(Layout, TrainerExpertOwnershipUnevenTorchChunk) {
  // 10 experts, fsdp=4, ep=2: ep ranks hold 5 each (0..4, 5..9), their 2 efsdp ranks 3 + 2.
  TrainerParallelism t;
  t.fsdp = 4;
  t.ep = 2;
  const std::vector<Range> want = {{0, 3}, {5, 8}, {3, 5}, {8, 10}};
  for (int shard = 0; shard < 4; ++shard) {
    EXPECT_EQ(t.ExpertsOf(10, shard), want[shard]) << "shard " << shard;
  }
  EXPECT_EQ(t.ExpertShard(10, 2), 0);
  EXPECT_EQ(t.ExpertShard(10, 3), 2);
  EXPECT_EQ(t.ExpertShard(10, 5), 1);
  EXPECT_EQ(t.ExpertShard(10, 9), 3);
  // 9 experts over ep=3 (3 each) and efsdp=2 (2 + 1).
  t.fsdp = 6;
  t.ep = 3;
  const std::vector<Range> want9 = {{0, 2}, {3, 5}, {6, 8}, {2, 3}, {5, 6}, {8, 9}};
  for (int shard = 0; shard < 6; ++shard) {
    EXPECT_EQ(t.ExpertsOf(9, shard), want9[shard]) << "shard " << shard;
  }
  // 7 experts over ep=2 (0..3, 4..6), efsdp=3: torch.chunk gives ep rank 0's 4 experts as
  // 2, 2, 0 (the last efsdp rank holds none) and ep rank 1's 3 experts as 1, 1, 1.
  const std::vector<Range> want7 = {{0, 2}, {4, 5}, {2, 4}, {5, 6}, {4, 4}, {6, 7}};
  t.ep = 2;
  for (int shard = 0; shard < 6; ++shard) {
    EXPECT_EQ(t.ExpertsOf(7, shard), want7[shard]) << "shard " << shard;
  }
  t.ep = 4;
  EXPECT_FALSE(t.Validate().ok());  // ep must divide fsdp
}

TEST(Layout, ExpertStacksSmallerThanFsdpAreRefusedWithExpertParallelism) {
  TrainerParallelism t;
  t.fsdp = 16;
  t.ep = 2;
  Status s = t.CheckExpertStack("layers.1.moe.experts.w1", 8);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("layers.1.moe.experts.w1"), std::string::npos);
  EXPECT_NE(s.message().find("Shard(1)"), std::string::npos);
  EXPECT_TRUE(t.CheckExpertStack("w", 16).ok());
  t.ep = 1;  // without EP torchtitan shards experts with the block: Shard(0), torch.chunk
  EXPECT_TRUE(t.CheckExpertStack("w", 8).ok());
}

TEST(Layout, ExpertPlacement) {
  InferenceParallelism i;
  i.dp = 4;
  i.expert_parallel = true;
  EXPECT_EQ(PlacedExperts(10, i, 0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(PlacedExperts(10, i, 1), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(PlacedExperts(10, i, 3), (std::vector<int64_t>{8, 9}));
  i.placement = ExpertPlacement::kRoundRobin;
  EXPECT_EQ(PlacedExperts(10, i, 1), (std::vector<int64_t>{1, 5, 9}));
}

TEST(Layout, ColumnSplitsEachFusedSource) {
  ModelDims dims;
  // gate_up [2 * 1024, 512] over tp=2: rank 1 holds [gate rows 512..1024; up rows 1536..2048].
  auto l = DestinationLayout(Tensor(TensorParallelism::kColumn, 2048, 512, true, {1024, 1024}),
                             dims, Tp(2), 1);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->rows, (std::vector<Range>{{512, 1024}, {1536, 2048}}));
  EXPECT_EQ(l->cols, (Range{0, 512}));
  EXPECT_EQ(l->local_rows(), 1024);
  // tp=16: 64-row shards cannot carry 128-row FP8 scale blocks.
  auto bad = DestinationLayout(Tensor(TensorParallelism::kColumn, 2048, 512, true, {1024, 1024}),
                               dims, Tp(16), 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.layers.0.x.weight"), std::string::npos);
  EXPECT_NE(bad.status().message().find("rank 3"), std::string::npos);
  // The same split is fine in bf16.
  EXPECT_TRUE(DestinationLayout(Tensor(TensorParallelism::kColumn, 2048, 512, false, {1024, 1024}),
                                dims, Tp(16), 3)
                  .ok());
}

TEST(Layout, QkvReplicatesKvHeadsWhenTpExceedsThem) {
  ModelDims dims;
  dims.head_dim = 128;
  // 8 q heads, 2 kv heads, tp=4: rank 3 holds q heads 6-7, kv head 1 (shared with rank 2).
  auto t = Tensor(TensorParallelism::kQkv, 1024 + 256 + 256, 512, true, {1024, 256, 256});
  auto l = DestinationLayout(t, dims, Tp(4), 3);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->rows, (std::vector<Range>{{768, 1024}, {1152, 1280}, {1408, 1536}}));
  auto l2 = DestinationLayout(t, dims, Tp(2), 1);  // tp=2: one kv head each
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(l2->rows, (std::vector<Range>{{512, 1024}, {1152, 1280}, {1408, 1536}}));
  EXPECT_FALSE(DestinationLayout(t, dims, Tp(3), 0).ok());
}

TEST(Layout, RowAndVocabAndReplicated) {
  ModelDims dims;
  auto row = DestinationLayout(Tensor(TensorParallelism::kRow, 256, 1024), dims, Tp(4), 2);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->cols, (Range{512, 768}));
  EXPECT_EQ(row->rows, (std::vector<Range>{{0, 256}}));
  // 1000 rows pad to 1024; rank 3 of 4 holds rows 768..1024, of which 1000..1024 are padding.
  auto vocab =
      DestinationLayout(Tensor(TensorParallelism::kVocab, 1000, 64, false), dims, Tp(4), 3);
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ(vocab->rows, (std::vector<Range>{{768, 1024}}));
  auto rep = DestinationLayout(Tensor(TensorParallelism::kReplicated, 7, 1, false), dims, Tp(4), 3);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->rows, (std::vector<Range>{{0, 7}}));
  auto none =
      DestinationLayout(Tensor(TensorParallelism::kUnspecified, 7, 1, false), dims, Tp(1), 0);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("parallel"), std::string::npos);
}

TEST(Layout, ExpertsWithAndWithoutExpertParallelism) {
  ModelDims dims;
  TensorShape2D w13 = Tensor(TensorParallelism::kExpertColumn, 1024, 256, true, {512, 512});
  w13.stacked = true;
  w13.parts = 10;
  TensorShape2D w2 = Tensor(TensorParallelism::kExpertRow, 256, 512);
  w2.stacked = true;
  w2.parts = 10;
  InferenceParallelism ep;
  ep.dp = 4;
  ep.expert_parallel = true;
  auto placed = DestinationLayout(w13, dims, ep, 3);
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed->parts, (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(placed->rows, (std::vector<Range>{{0, 1024}}));
  // Without EP, dp x tp = 4 ranks slice every expert: w13 per source, w2 on columns.
  ep.expert_parallel = false;
  auto sliced = DestinationLayout(w13, dims, ep, 1);
  ASSERT_TRUE(sliced.ok());
  EXPECT_EQ(sliced->parts.size(), 10u);
  EXPECT_EQ(sliced->rows, (std::vector<Range>{{128, 256}, {640, 768}}));
  auto sliced2 = DestinationLayout(w2, dims, ep, 2);
  ASSERT_TRUE(sliced2.ok());
  EXPECT_EQ(sliced2->cols, (Range{256, 384}));
}

TEST(Layout, ScaleLayoutFollowsWeightInBlocks) {
  LocalLayout weight;
  weight.parts = {0};
  weight.rows = {{512, 1024}, {1536, 2000}};
  weight.cols = {256, 700};
  LocalLayout scale = ScaleLayout(weight, 2000, 700);
  EXPECT_EQ(scale.rows, (std::vector<Range>{{4, 8}, {12, 16}}));
  EXPECT_EQ(scale.cols, (Range{2, 6}));
}

}  // namespace
}  // namespace weightsync
