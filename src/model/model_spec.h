// Model spec files: the data that says, per model, how a trainer's tensors become inference tensors.
//
// A spec (models/*.json, docs/model-specs.md) names source formats (how a trainer or checkpoint
// spells each canonical Hugging Face tensor) and target formats (which destination tensors exist,
// what they are made of, and their dtype/quantization). Specs may extend another spec. Specs are
// data, not code: users add a model by writing a file, without recompiling.
//
// Threading: a loaded ModelSpec is immutable and may be shared between threads.
#pragma once

#include <map>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "convert/conversion_spec.h"
#include "model/name_pattern.h"

namespace weightsync {

// One canonical tensor as found in a source format: a rename, or an expert of a 3D stack
// (`select` names the variable indexing dimension 0), or one equal row chunk of it.
struct SourceRule {
  NamePattern canonical;
  NamePattern source;
  std::string select;  // variable bound to the index in dimension 0, or empty
  int64_t chunk = 0;
  int64_t chunks = 1;
};

struct SourceFormat {
  std::string name;
  std::string description;
  std::vector<SourceRule> rules;  // canonical names not covered by a rule are spelled as in hf
};

// How an inference engine splits one destination tensor over its ranks (docs/plan.md). Only
// target formats that an engine loads rank by rank (vllm) need it; the planner refuses a tensor
// without it rather than guessing.
enum class TensorParallelism : uint8_t {
  kUnspecified,
  kReplicated,    // every rank holds the whole tensor
  kColumn,        // dim 0 split by TP; fused sources split one by one ([gate_r; up_r])
  kRow,           // dim 1 split by TP
  kQkv,           // column, at head granularity, kv heads replicated when TP > kv heads
  kExpertColumn,  // experts over EP ranks; without EP each expert is column-split (w13)
  kExpertRow,     // experts over EP ranks; without EP each expert is row-split (w2)
  kVocab,         // dim 0 padded to a multiple of 64, then split by TP
};

// "replicated", "column", ...; nullopt for an unknown name.
std::optional<TensorParallelism> TensorParallelismFromName(std::string_view name);
std::string_view TensorParallelismName(TensorParallelism parallelism);

// One destination tensor rule. `stack` names the expert variable stacked into dimension 0.
struct TargetRule {
  NamePattern name;
  std::vector<NamePattern> sources;  // canonical names, concatenated along cat_dim
  std::string stack;
  int cat_dim = 0;
  QuantizationSpec quantization;
  // Required rules must produce a tensor (for rules with {L}: for every layer seen in the source).
  bool optional = false;
  TensorParallelism parallel = TensorParallelism::kUnspecified;
};

struct TargetFormat {
  std::string name;
  std::string description;
  std::vector<TargetRule> tensors;
};

struct ModelSpec {
  std::string name;
  std::string description;
  std::vector<std::string> lineage;  // this spec, then what it extends, and so on
  std::map<std::string, SourceFormat> source_formats;
  std::map<std::string, TargetFormat> target_formats;
  std::string hash;  // xxh64 of the merged spec, hex: both sides of a push must agree on it

  Result<const SourceFormat*> FindSourceFormat(const std::string& format) const;
  Result<const TargetFormat*> FindTargetFormat(const std::string& format) const;
};

// Where spec files come from: the built-in ones compiled into the library, then directories given
// by the user (WEIGHTSYNC_MODEL_PATH, --spec-dir); a later file with the same model name wins.
class ModelSpecLibrary {
 public:
  static ModelSpecLibrary Builtin();
  // Adds every *.json in `directory`; a file that does not parse is an error naming it.
  Status AddDirectory(const std::string& directory);
  // Adds one spec document (the text of a models/*.json file); `origin` is used in messages.
  Status AddDocument(const std::string& text, const std::string& origin);
  // Builtin() plus the directories in WEIGHTSYNC_MODEL_PATH (colon-separated).
  static Result<ModelSpecLibrary> FromEnvironment();

  // `name` is a model name or a path to a .json spec file.
  Result<ModelSpec> Load(const std::string& name) const;
  std::vector<std::string> ModelNames() const;

 private:
  struct Document {
    std::string text;
    std::string origin;
  };
  std::map<std::string, Document> documents_;
};

}  // namespace weightsync
