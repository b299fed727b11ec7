#include "plan/transfer_plan.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

#include "plan/plan_internal.h"

namespace weightsync {
namespace {

// A tiny GLM-5 shaped model whose every split below is 128-block aligned: vocab 1000 pads to 1024.
ModelDims TinyGlm() {
  ModelDims d = *PresetDims("glm5");
  d.hidden = 256, d.vocab = 1000, d.layers = 3, d.intermediate = 1024, d.moe_intermediate = 512;
  d.first_k_dense = 1, d.experts = 8, d.shared_experts = 1, d.heads = 8;
  d.q_lora = 256, d.kv_lora = 128, d.rope = 64, d.nope = 128, d.v_head = 128;
  d.index_heads = 4, d.index_head_dim = 64;
  return d;
}

ModelSpec Spec(const std::string& name) { return *ModelSpecLibrary::Builtin().Load(name); }

TEST(TransferPlan, SmallPlanIsCompleteAndDeterministic) {
  PlanOptions o;
  o.trainer.fsdp = 4;
  o.trainer.ep = 2;
  o.inference.dp = 4;
  o.inference.expert_parallel = true;
  o.inference.replicas = 2;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  Status valid = ValidatePlan(*plan);
  EXPECT_TRUE(valid.ok()) << valid.ToString();
  auto again = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  EXPECT_EQ(plan->hash, again->hash);
  EXPECT_EQ(plan->hash.size(), 16u);
  o.inference.placement = ExpertPlacement::kRoundRobin;
  auto other = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  EXPECT_NE(plan->hash, other->hash);
  // Every replica rank holds the same bytes with data-parallel attention and linear placement.
  for (int64_t bytes : plan->inference_bytes) EXPECT_EQ(bytes, plan->inference_bytes[0]);
}

TEST(TransferPlan, ExpertUnitsCoalesceIntoOneWritePerReceiver) {
  PlanOptions o;
  o.trainer.fsdp = 4;  // 2 experts per trainer rank
  o.inference.dp = 2;  // 4 experts per inference rank, linear
  o.inference.expert_parallel = true;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  for (const ConvertUnit& unit : plan->units) {
    const PlannedTensor& t = plan->tensors[unit.tensor];
    if (!t.shape.stacked) continue;
    EXPECT_FALSE(unit.gathered);
    EXPECT_EQ(unit.parts.size(), 2);
    EXPECT_EQ(unit.write_count, 2) << t.shape.name;  // weight + scale, to one rank
  }
}

// Writes of one whole-tensor unit on tp=2, against offsets computed by hand.
std::vector<PlannedWrite> WritesOf(const TransferPlan& plan, const std::string& tensor) {
  std::vector<PlannedWrite> out;
  for (const ConvertUnit& unit : plan.units) {
    if (plan.tensors[unit.tensor].shape.name != tensor) continue;
    EXPECT_EQ(unit.rows.begin, 0);
    EXPECT_EQ(unit.rows.end, plan.tensors[unit.tensor].shape.rows);
    for (int64_t w = unit.first_write; w < unit.first_write + unit.write_count; ++w) {
      out.push_back(plan.writes[w]);
    }
  }
  return out;
}

void ExpectWrite(const PlannedWrite& w, int rank, bool scale, int64_t slot, int64_t dest,
                 int64_t bytes) {
  EXPECT_EQ(w.rank, rank);
  EXPECT_EQ(w.scale, scale);
  EXPECT_EQ(w.slot_offset, slot);
  EXPECT_EQ(w.dest_offset, dest);
  EXPECT_EQ(w.bytes, bytes);
}

TEST(TransferPlan, WritesMatchHandComputedOffsets) {
  PlanOptions o;
  o.trainer.fsdp = 1;
  o.inference.tp = 2;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(ValidatePlan(*plan).ok());
  // o_proj [256, 1024] fp8, row-parallel: the slot holds columns 0..512 then 512..1024, each a
  // contiguous [256, 512] matrix; scales [2, 8] blocks as [2, 4] + [2, 4].
  auto o_proj = WritesOf(*plan, "model.layers.0.self_attn.o_proj.weight");
  ASSERT_EQ(o_proj.size(), 4u);
  ExpectWrite(o_proj[0], 0, false, 0, 0, 256 * 512);
  ExpectWrite(o_proj[1], 0, true, 0, 0, 2 * 4 * 4);
  ExpectWrite(o_proj[2], 1, false, 256 * 512, 0, 256 * 512);
  ExpectWrite(o_proj[3], 1, true, 2 * 4 * 4, 0, 2 * 4 * 4);
  // Dense gate_up [2048, 256] = [gate 1024; up 1024], merged column: rank 1 holds
  // [gate 512..1024; up 1536..2048] (scale rows [4, 8) and [12, 16), 2 blocks wide).
  // The slot stores rank 0's rows [gate 0..512; up 1024..1536] first, then rank 1's, so each
  // rank's share is one write (scale: 8 block rows x 2 block columns per rank).
  auto gate_up = WritesOf(*plan, "model.layers.0.mlp.gate_up_proj.weight");
  ASSERT_EQ(gate_up.size(), 4u);
  ExpectWrite(gate_up[0], 0, false, 0, 0, 1024 * 256);
  ExpectWrite(gate_up[2], 1, false, 1024 * 256, 0, 1024 * 256);
  ExpectWrite(gate_up[3], 1, true, 8 * 2 * 4, 0, 8 * 2 * 4);
  // embed_tokens [1000, 256] bf16 padded to 1024 rows: rank 1 holds rows 512..1024 and is written
  // rows 512..1000 only.
  auto embed = WritesOf(*plan, "model.embed_tokens.weight");
  ASSERT_EQ(embed.size(), 2u);
  ExpectWrite(embed[1], 1, false, 512 * 256 * 2, 0, 488 * 256 * 2);
}

// An independent, element by element reading of the slot layout documented in transfer_plan.h:
// for each column segment, each row group, each part, the unit's rows of the group ascending,
// the segment's columns. Element index -> (part, row, col).
std::vector<std::array<int64_t, 3>> SlotElements(const PlannedTensor& t, const ConvertUnit& u,
                                                 bool scale) {
  const int64_t block = scale ? 128 : 1;
  const Range rows{u.rows.begin / block, (u.rows.end + block - 1) / block};
  const auto& groups = scale ? t.scale_row_groups : t.row_groups;
  std::vector<std::array<int64_t, 3>> out;
  for (const Range& segment : t.segments) {
    const Range cols{segment.begin / block, (segment.end + block - 1) / block};
    for (const auto& group : groups) {
      for (int64_t p = u.parts.begin; p < u.parts.end; ++p) {
        for (const Range& r : group) {
          for (int64_t row = std::max(r.begin, rows.begin); row < std::min(r.end, rows.end);
               ++row) {
            for (int64_t c = cols.begin; c < cols.end; ++c) out.push_back({p, row, c});
          }
        }
      }
    }
  }
  return out;
}

// Local element index of a rank's tensor -> (part, row, col) of the full tensor.
std::array<int64_t, 3> LocalElement(const LocalLayout& layout, int64_t index) {
  const int64_t cols = layout.cols.size();
  const int64_t local_rows = layout.local_rows();
  const int64_t part = index / cols / local_rows;
  int64_t row = index / cols % local_rows;
  for (const Range& r : layout.rows) {
    if (row < r.size())
      return {layout.parts[part], r.begin + row, layout.cols.begin + index % cols};
    row -= r.size();
  }
  return {-1, -1, -1};
}

// Replays every write element by element: each destination element must receive the slot element
// holding the same (part, row, col) of the full tensor.
void ExpectWritesCarryTheRightElements(const TransferPlan& plan) {
  for (const ConvertUnit& unit : plan.units) {
    const PlannedTensor& t = plan.tensors[unit.tensor];
    for (bool scale : {false, true}) {
      if (scale && !t.shape.fp8) continue;
      const auto slot = SlotElements(t, unit, scale);
      const int64_t element = scale ? 4 : t.element_bytes();
      ASSERT_EQ(static_cast<int64_t>(slot.size()) * element,
                scale ? unit.scale_bytes : unit.weight_bytes)
          << t.shape.name;
      for (int64_t w = unit.first_write; w < unit.first_write + unit.write_count; ++w) {
        const PlannedWrite& write = plan.writes[w];
        if (write.scale != scale) continue;
        LocalLayout layout = t.layouts[write.rank];
        if (scale) layout = ScaleLayout(layout, t.shape.rows, t.shape.cols);
        for (int64_t i = 0; i < write.bytes / element; ++i) {
          const auto want = LocalElement(layout, write.dest_offset / element + i);
          const auto got = slot[write.slot_offset / element + i];
          ASSERT_EQ(got, want) << t.shape.name << (scale ? " scale" : "") << " rank " << write.rank
                               << " write " << w << " element " << i;
        }
      }
    }
  }
}

TEST(TransferPlan, WritesCarryTheRightElements) {
  std::mt19937 rng(99);
  auto pick = [&](std::vector<int> v) { return v[rng() % v.size()]; };
  for (int trial = 0; trial < 6; ++trial) {
    PlanOptions o;
    o.trainer.fsdp = pick({1, 3, 4});
    o.inference.tp = pick({1, 2, 4});
    o.inference.dp = pick({1, 2});
    o.inference.expert_parallel = rng() % 2;
    o.inference.placement = rng() % 2 ? ExpertPlacement::kLinear : ExpertPlacement::kRoundRobin;
    o.unit_bytes = pick({65536, 1 << 20});
    o.min_shard_bytes = pick({1, 1 << 20});
    SCOPED_TRACE(StrCat(o.trainer.ToString(), " ", o.inference.ToString()));
    ModelDims d = TinyGlm();
    d.layers = 2;
    auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), d, o);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ExpectWritesCarryTheRightElements(*plan);
  }
  ModelDims q = *PresetDims("qwen3_235b");
  q.layers = 1, q.hidden = 512, q.heads = 8, q.kv_heads = 2, q.experts = 4, q.vocab = 1000;
  q.moe_intermediate = 512;
  PlanOptions o;
  o.source_format = "hf-fused";
  o.trainer.fsdp = 3;
  o.inference.tp = 4;  // kv heads replicated on pairs of ranks
  auto plan = BuildTransferPlan(Spec("qwen3_moe"), q, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ExpectWritesCarryTheRightElements(*plan);
}

TEST(TransferPlan, GathersBlocksThatStraddleShards) {
  PlanOptions o;
  o.trainer.fsdp = 3;  // 256-row FP8 tensors split 86/86/84: no whole 128-block on one rank
  o.min_shard_bytes = 1;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(ValidatePlan(*plan).ok());
  bool saw = false;
  for (const ConvertUnit& unit : plan->units) {
    if (plan->tensors[unit.tensor].shape.name == "model.layers.0.self_attn.q_a_proj.weight")
      saw = true;
    if (plan->tensors[unit.tensor].shape.name == "model.layers.0.self_attn.o_proj.weight") {
      EXPECT_TRUE(unit.gathered);
      EXPECT_GT(unit.gather_bytes, 0);
    }
  }
  EXPECT_FALSE(saw);  // q_a_proj is fused into fused_qkv_a_proj
}

TEST(TransferPlan, RandomLayoutsCoverEveryByteExactlyOnce) {
  std::mt19937 rng(1234);
  auto pick = [&](std::vector<int> v) { return v[rng() % v.size()]; };
  for (int trial = 0; trial < 40; ++trial) {
    PlanOptions o;
    o.trainer.fsdp = pick({1, 2, 3, 5, 6, 8, 12});
    std::vector<int> eps;
    for (int e = 1; e <= o.trainer.fsdp; ++e) {
      // With EP, fsdp > experts (8) is refused (torchtitan's dim-1 expert sharding).
      if (o.trainer.fsdp % e == 0 && (e == 1 || o.trainer.fsdp <= 8)) eps.push_back(e);
    }
    o.trainer.ep = pick(eps);
    o.trainer.hsdp = pick({1, 2});
    o.trainer.all_replicas_send = rng() % 2;
    o.trainer.gpus_per_node = pick({2, 4, 8});
    o.inference.tp = pick({1, 2});
    o.inference.dp = pick({1, 2});
    o.inference.expert_parallel = rng() % 2;
    o.inference.placement = rng() % 2 ? ExpertPlacement::kLinear : ExpertPlacement::kRoundRobin;
    o.inference.replicas = pick({1, 2, 3});
    o.unit_bytes = pick({4096, 65536, 1 << 20});
    o.min_shard_bytes = pick({1, 16384, 1 << 20});
    o.staging_budget = 8 << 20;
    const std::string format = rng() % 2 ? "torchtitan" : "hf-fused";
    o.source_format = format;
    SCOPED_TRACE(StrCat(o.trainer.ToString(), " ", o.inference.ToString(), " unit ", o.unit_bytes,
                        " min shard ", o.min_shard_bytes, " ", format));
    auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    Status valid = ValidatePlan(*plan);
    ASSERT_TRUE(valid.ok()) << valid.ToString();
    auto again = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
    ASSERT_EQ(plan->hash, again->hash);
    for (const ConvertUnit& unit : plan->units) {
      ASSERT_LT(unit.owner, o.trainer.senders());
    }
  }
}

TEST(TransferPlan, ExpertStacksSmallerThanFsdpWithEpAreRefusedNamingTheTensor) {
  PlanOptions o;
  o.trainer.fsdp = 12;  // > 8 experts: torchtitan would shard every expert's rows (Shard(1))
  o.trainer.ep = 2;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("model.layers.1.mlp.experts"), std::string::npos)
      << plan.status().ToString();
  EXPECT_NE(plan.status().message().find("fsdp=12"), std::string::npos);
  o.trainer.ep = 1;  // without EP the experts are Shard(0) with the rest: planned
  EXPECT_TRUE(BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o).ok());
}

// 12 experts that dominate the bytes: gathered non-expert units alone cannot even the load out.
ModelDims ExpertHeavyTinyGlm() {
  ModelDims d = TinyGlm();
  d.experts = 12;
  d.moe_intermediate = 4096, d.first_k_dense = 0, d.layers = 2, d.vocab = 128;
  d.shared_experts = 0;
  return d;
}

TEST(TransferPlan, UnevenExpertSplitsAreRebalancedInsideTheNode) {
  // 12 experts over 8 ranks: torch.chunk gives 2, 2, 2, 2, 2, 2, 0, 0.
  const ModelDims d = ExpertHeavyTinyGlm();
  PlanOptions o;
  o.trainer.fsdp = 8;  // one inference rank: non-expert tensors are not multiplied by replication
  o.write_cost_bytes = 0;  // in a model this small, write counts would otherwise dominate
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), d, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(ValidatePlan(*plan).ok());
  int moved = 0;
  for (const ConvertUnit& unit : plan->units) {
    if (!unit.moved) continue;
    ++moved;
    EXPECT_TRUE(unit.gathered);
    EXPECT_GT(unit.gather_bytes, 0);
    EXPECT_EQ(unit.gather_nic_bytes, 0);  // one node: NVLink only
  }
  EXPECT_GT(moved, 0);
  int64_t most = 0, least = INT64_MAX;
  for (const TrainerRankLoad& load : plan->trainer) {
    most = std::max(most, load.write_bytes);
    least = std::min(least, load.write_bytes);
  }
  EXPECT_LT(most, least * 13 / 10);  // without moves ranks 6 and 7 would hold no experts
}

TEST(TransferPlan, TorchtitanOrderIdleRanksAreRebalancedAcrossNodes) {
  const ModelDims d = ExpertHeavyTinyGlm();  // ep=4: 3 per ep rank, over efsdp=2: 2 + 1
  PlanOptions o;
  o.trainer.fsdp = 8;
  o.trainer.ep = 4;
  o.trainer.gpus_per_node = 4;  // torchtitan's order: node 0 (ranks 0-3) holds 2 experts of each
                                // stack per rank, node 1 (ranks 4-7) 1: no move inside a node helps
  o.inference.replicas = 4;     // egress 4 x FP8 per expert: twice its bf16 source
  o.write_cost_bytes = 0;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), d, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(ValidatePlan(*plan).ok());
  int across = 0;
  for (const ConvertUnit& unit : plan->units) {
    if (!unit.moved) continue;
    EXPECT_TRUE(unit.gathered);
    if (unit.gather_nic_bytes > 0) ++across;
  }
  EXPECT_GT(across, 0);
  int64_t most = 0, least = INT64_MAX;
  for (const TrainerRankLoad& load : plan->trainer) {
    most = std::max(most, load.nic_egress_bytes());
    least = std::min(least, load.nic_egress_bytes());
  }
  EXPECT_LT(most, least * 12 / 10) << most << " vs " << least;
}

TEST(TransferPlan, QwenWithTensorParallelism) {
  ModelDims d = *PresetDims("qwen3_235b");
  d.layers = 2;
  d.hidden = 512, d.heads = 8, d.kv_heads = 2, d.experts = 4, d.moe_intermediate = 512;
  d.vocab = 1000;
  PlanOptions o;
  o.source_format = "hf-fused";
  o.trainer.fsdp = 5;
  o.inference.tp = 4;  // kv heads replicated twice; experts sliced 128 rows each
  auto plan = BuildTransferPlan(Spec("qwen3_moe"), d, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(ValidatePlan(*plan).ok());
  o.inference.tp = 8;  // 512 / 8 = 64-row expert slices: not on FP8 blocks
  auto bad = BuildTransferPlan(Spec("qwen3_moe"), d, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("w13_weight"), std::string::npos)
      << bad.status().ToString();
}

TEST(TransferPlan, ValidationNamesTensorAndRanks) {
  PlanOptions o;
  o.trainer.fsdp = 2;
  o.min_shard_bytes = 1;  // shard by shard: destinations written by several writes
  o.inference.dp = 2;
  o.inference.expert_parallel = true;
  auto built = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(built.ok());
  const TransferPlan& plan = *built;
  // Drop a write: bytes never written.
  {
    TransferPlan broken = plan;
    ConvertUnit& unit = broken.units[0];
    broken.writes[unit.first_write].bytes -= 2;
    Status s = ValidatePlan(broken);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("never written"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find(plan.tensors[unit.tensor].shape.name), std::string::npos);
    EXPECT_NE(s.message().find("replica 0 rank 0"), std::string::npos) << s.ToString();
  }
  // Overlap: a write shifted onto its neighbour.
  {
    TransferPlan broken = plan;
    bool shifted = false;
    for (PlannedWrite& w : broken.writes) {
      if (w.dest_offset > 0) {
        w.dest_offset -= 2;
        shifted = true;
        break;
      }
    }
    ASSERT_TRUE(shifted);
    Status s = ValidatePlan(broken);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("written twice, by trainer ranks"), std::string::npos)
        << s.ToString();
  }
  // Out of bounds of the slot.
  {
    TransferPlan broken = plan;
    broken.writes[0].slot_offset += broken.units[0].weight_bytes;
    EXPECT_EQ(ValidatePlan(broken).code(), StatusCode::kOutOfRange);
  }
}

TEST(TransferPlan, StagingBudgetIsEnforced) {
  PlanOptions o;
  o.trainer.fsdp = 2;
  o.staging_budget = 4096;
  auto plan = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(plan.status().message().find("trainer rank"), std::string::npos);
  o.staging_budget = 1 << 20;
  o.unit_bytes = 64 << 10;
  auto fits = BuildTransferPlan(Spec("glm_moe_dsa"), TinyGlm(), o);
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_TRUE(ValidatePlan(*fits).ok());
  for (const TrainerRankLoad& load : fits->trainer) EXPECT_LE(load.staging_bytes, 1 << 20);
}

}  // namespace
}  // namespace weightsync
