#include "model/conversion_plan.h"

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <unordered_map>

#include "io/utf8.h"

namespace weightsync {
namespace {

constexpr size_t kMaxNamesInError = 12;

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxNamesInError; ++i) {
    out += (i ? ", " : "") + EscapeForMessage(names[i]);
  }
  if (names.size() > kMaxNamesInError) out += StrCat(" and ", names.size() - kMaxNamesInError, " more");
  return out;
}

std::string JoinNumbers(const std::set<int64_t>& numbers) {
  std::vector<std::string> parts;
  for (int64_t n : numbers) parts.push_back(std::to_string(n));
  return JoinNames(parts);
}

// Canonical (hf) name -> where its values are in the source.
struct CanonicalIndex {
  std::map<std::string, SourceRef> refs;  // ordered: deterministic plans
  std::map<std::string, std::string> first_source_of;  // canonical -> actual name, for messages
};

Result<CanonicalIndex> IndexSources(const SourceFormat& format,
                                    const std::vector<SourceTensorInfo>& sources) {
  CanonicalIndex index;
  auto add = [&](const std::string& canonical, SourceRef ref) -> Status {
    auto [it, inserted] = index.refs.emplace(canonical, ref);
    if (!inserted) {
      return InvalidArgument("source tensors ", EscapeForMessage(it->second.ToString()), " and ",
                             EscapeForMessage(ref.ToString()), " both provide ",
                             EscapeForMessage(canonical));
    }
    return Status::Ok();
  };
  for (const SourceTensorInfo& source : sources) {
    bool matched = false;
    for (const SourceRule& rule : format.rules) {
      Bindings bindings;
      if (!rule.source.Match(source.name, &bindings)) continue;
      matched = true;
      if (rule.select.empty()) {
        WS_ASSIGN_OR_RETURN(std::string canonical, rule.canonical.Format(bindings));
        WS_RETURN_IF_ERROR(add(canonical, {source.name, -1, rule.chunk, rule.chunks}));
        continue;
      }
      if (source.shape.size() != 3) {
        return InvalidArgument("source ", EscapeForMessage(source.name),
                               " should be a 3D expert stack for format ", format.name,
                               ", has shape ", ShapeToString(source.shape));
      }
      for (int64_t e = 0; e < source.shape[0]; ++e) {
        bindings[rule.select] = e;
        WS_ASSIGN_OR_RETURN(std::string canonical, rule.canonical.Format(bindings));
        WS_RETURN_IF_ERROR(add(canonical, {source.name, e, rule.chunk, rule.chunks}));
      }
    }
    if (!matched) WS_RETURN_IF_ERROR(add(source.name, {source.name}));
  }
  return index;
}

struct Instance {
  int64_t layer = -1;
  size_t rule = 0;
  ConversionSpec spec;
};

// Builds every destination of one rule. Records which canonical names it consumed and which layers
// it covered.
Status InstantiateRule(const TargetRule& rule, size_t rule_index, const CanonicalIndex& index,
                       std::set<std::string>& consumed, std::set<int64_t>& layers_covered,
                       std::vector<Instance>& out) {
  // Group matches of the first source by the bindings that name the destination.
  std::map<Bindings, std::set<int64_t>> groups;  // destination bindings -> stacked indices
  for (const auto& [canonical, ref] : index.refs) {
    Bindings bindings;
    if (!rule.sources[0].Match(canonical, &bindings)) continue;
    int64_t stacked = -1;
    if (!rule.stack.empty()) {
      stacked = bindings.at(rule.stack);
      bindings.erase(rule.stack);
    }
    groups[bindings].insert(stacked);
  }
  for (const auto& [bindings, members] : groups) {
    Instance instance;
    instance.rule = rule_index;
    auto layer = bindings.find("L");
    if (layer != bindings.end()) instance.layer = layer->second;
    ConversionSpec& spec = instance.spec;
    WS_ASSIGN_OR_RETURN(spec.destination, rule.name.Format(bindings));
    spec.stacked = !rule.stack.empty();
    spec.cat_dim = rule.cat_dim;
    spec.quantization = rule.quantization;
    if (spec.stacked) {
      int64_t expected = 0;
      for (int64_t e : members) {
        if (e != expected) {
          return InvalidArgument("destination ", spec.destination, ": expert ", expected,
                                 " is missing (found ", JoinNumbers(members), ")");
        }
        ++expected;
      }
    }
    for (int64_t member : members) {
      Bindings full = bindings;
      if (spec.stacked) full[rule.stack] = member;
      std::vector<SourceRef> part;
      for (const NamePattern& source : rule.sources) {
        WS_ASSIGN_OR_RETURN(std::string canonical, source.Format(full));
        auto it = index.refs.find(canonical);
        if (it == index.refs.end()) {
          return NotFound("destination ", spec.destination, " needs source ", canonical,
                          ", which is missing");
        }
        consumed.insert(canonical);
        part.push_back(it->second);
      }
      spec.parts.push_back(std::move(part));
    }
    if (instance.layer >= 0) layers_covered.insert(instance.layer);
    out.push_back(std::move(instance));
  }
  return Status::Ok();
}

}  // namespace

Result<ConversionPlan> PlanConversion(const ModelSpec& model,
                                      const std::vector<SourceTensorInfo>& sources,
                                      const ConversionPlanOptions& options) {
  WS_ASSIGN_OR_RETURN(const SourceFormat* source_format,
                      model.FindSourceFormat(options.source_format));
  WS_ASSIGN_OR_RETURN(const TargetFormat* target_format,
                      model.FindTargetFormat(options.target_format));

  ConversionPlan plan;
  std::vector<std::regex> ignore;
  for (const auto& pattern : options.ignore) {
    try {
      ignore.emplace_back(pattern, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      return InvalidArgument("ignore pattern '", EscapeForMessage(pattern),
                             "' is not a valid regular expression: ", e.what());
    }
  }
  std::vector<SourceTensorInfo> kept;
  for (const auto& source : sources) {
    bool skip = std::any_of(ignore.begin(), ignore.end(),
                            [&](const std::regex& re) { return std::regex_match(source.name, re); });
    (skip ? plan.ignored.push_back(source.name) : kept.push_back(source));
  }

  WS_ASSIGN_OR_RETURN(CanonicalIndex index, IndexSources(*source_format, kept));

  // Every layer number seen in any canonical name a rule could consume.
  std::set<int64_t> layers;
  for (const auto& [canonical, ref] : index.refs) {
    for (const TargetRule& rule : target_format->tensors) {
      Bindings bindings;
      if (rule.sources[0].HasVariable("L") && rule.sources[0].Match(canonical, &bindings)) {
        layers.insert(bindings["L"]);
      }
    }
  }

  std::vector<Instance> instances;
  std::set<std::string> consumed;
  const std::string context = StrCat("model ", model.name, ", ", options.source_format, " -> ",
                                     options.target_format);
  for (size_t r = 0; r < target_format->tensors.size(); ++r) {
    const TargetRule& rule = target_format->tensors[r];
    std::set<int64_t> covered;
    size_t before = instances.size();
    WS_RETURN_IF_ERROR(
        InstantiateRule(rule, r, index, consumed, covered, instances).WithContext(context));
    if (rule.optional || options.allow_partial) continue;
    if (rule.name.HasVariable("L")) {
      std::set<int64_t> missing;
      std::set_difference(layers.begin(), layers.end(), covered.begin(), covered.end(),
                          std::inserter(missing, missing.begin()));
      if (!missing.empty()) {
        return NotFound(context, ": required tensor ", rule.sources[0].text(),
                        " is missing for layers ", JoinNumbers(missing));
      }
    } else if (instances.size() == before) {
      return NotFound(context, ": required tensor ", rule.sources[0].text(), " is missing");
    }
  }

  std::vector<std::string> unconsumed;
  for (const auto& [canonical, ref] : index.refs) {
    if (!consumed.count(canonical)) {
      unconsumed.push_back(canonical == ref.tensor ? canonical
                                                   : StrCat(ref.ToString(), " (", canonical, ")"));
    }
  }
  if (!unconsumed.empty()) {
    return InvalidArgument(context, ": ", unconsumed.size(), " source tensors are not consumed by"
                           " any rule: ", JoinNames(unconsumed),
                           " (skip them with an ignore pattern if that is intended)");
  }

  std::stable_sort(instances.begin(), instances.end(), [](const Instance& a, const Instance& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.rule < b.rule;
  });
  std::set<std::string> destinations;
  for (auto& instance : instances) {
    if (!destinations.insert(instance.spec.destination).second) {
      return InvalidArgument(context, ": two rules produce ", instance.spec.destination);
    }
    if (instance.spec.quantization.quantized() &&
        !destinations.insert(instance.spec.scale_name()).second) {
      return InvalidArgument(context, ": scale ", instance.spec.scale_name(),
                             " collides with another destination");
    }
    plan.specs.push_back(std::move(instance.spec));
    plan.rules.push_back(instance.rule);
  }
  return plan;
}

}  // namespace weightsync
