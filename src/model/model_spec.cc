#include "model/model_spec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "model/builtin_model_specs.h"

namespace weightsync {
namespace {

using nlohmann::json;

Status CheckKeys(const json& object, std::initializer_list<std::string_view> allowed,
                 const std::string& where) {
  if (!object.is_object()) return InvalidArgument(where, ": expected a JSON object");
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto a : allowed) known |= (a == key);
    if (!known) return InvalidArgument(where, ": unknown key '", key, "'");
  }
  return Status::Ok();
}

// Child entries replace parent entries with the same key field, the rest are appended.
void MergeList(json& parent, const json& child, const char* key_field) {
  for (const auto& item : child) {
    bool replaced = false;
    for (auto& existing : parent) {
      if (existing.value(key_field, "") == item.value(key_field, "")) {
        existing = item;
        replaced = true;
      }
    }
    if (!replaced) parent.push_back(item);
  }
}

void MergeFormats(json& parent, const json& child, const char* list, const char* key_field) {
  for (const auto& [format, body] : child.items()) {
    json& target = parent[format];
    if (!target.is_object()) target = json::object();
    if (body.contains("description")) target["description"] = body["description"];
    if (!target.contains(list)) target[list] = json::array();
    if (body.contains(list)) MergeList(target[list], body[list], key_field);
  }
}

Result<NamePattern> ParsePattern(const json& value, const std::string& where) {
  if (!value.is_string()) return InvalidArgument(where, ": expected a string");
  Result<NamePattern> parsed = NamePattern::Parse(value.get<std::string>());
  if (!parsed.ok()) return parsed.status().WithContext(where);
  return parsed;
}

Result<SourceRule> ParseSourceRule(const json& j, const std::string& where) {
  WS_RETURN_IF_ERROR(CheckKeys(j, {"canonical", "source", "select", "chunk"}, where));
  SourceRule rule;
  WS_ASSIGN_OR_RETURN(rule.canonical, ParsePattern(j.value("canonical", json()), where));
  WS_ASSIGN_OR_RETURN(rule.source, ParsePattern(j.value("source", json()), where));
  rule.select = j.value("select", "");
  if (!rule.select.empty() && !rule.canonical.HasVariable(rule.select)) {
    return InvalidArgument(where, ": select variable {", rule.select, "} not in the canonical name");
  }
  if (j.contains("chunk")) {
    const json& c = j["chunk"];
    if (!c.is_array() || c.size() != 2 || !c[0].is_number_integer() || !c[1].is_number_integer() ||
        c[1].get<int64_t>() < 1 || c[0].get<int64_t>() < 0 || c[0].get<int64_t>() >= c[1].get<int64_t>()) {
      return InvalidArgument(where, ": chunk must be [index, count] with 0 <= index < count");
    }
    rule.chunk = c[0].get<int64_t>();
    rule.chunks = c[1].get<int64_t>();
  }
  for (const auto& variable : rule.canonical.variables()) {
    if (variable != rule.select && !rule.source.HasVariable(variable)) {
      return InvalidArgument(where, ": canonical variable {", variable, "} not in the source name");
    }
  }
  return rule;
}

Result<TargetRule> ParseTargetRule(const json& j, const std::string& where) {
  WS_RETURN_IF_ERROR(CheckKeys(
      j, {"name", "sources", "stack", "cat_dim", "dtype", "scale_suffix", "optional", "parallel"},
      where));
  TargetRule rule;
  WS_ASSIGN_OR_RETURN(rule.name, ParsePattern(j.value("name", json()), where));
  const json& sources = j.value("sources", json());
  if (!sources.is_array() || sources.empty()) {
    return InvalidArgument(where, ": 'sources' must be a non-empty list");
  }
  for (const auto& s : sources) {
    WS_ASSIGN_OR_RETURN(NamePattern pattern, ParsePattern(s, where));
    rule.sources.push_back(std::move(pattern));
  }
  rule.stack = j.value("stack", "");
  rule.cat_dim = j.value("cat_dim", 0);
  rule.optional = j.value("optional", false);
  auto dtype = DTypeFromTorchName(j.value("dtype", ""));
  if (!dtype) return InvalidArgument(where, ": unknown dtype '", j.value("dtype", ""), "'");
  rule.quantization.destination_dtype = *dtype;
  rule.quantization.scale_suffix = j.value("scale_suffix", "");
  if (j.contains("parallel")) {
    const json& p = j["parallel"];
    auto parallel = p.is_string() ? TensorParallelismFromName(p.get<std::string>()) : std::nullopt;
    if (!parallel) {
      return InvalidArgument(where, ": unknown parallel '", p.dump(),
                             "' (replicated, column, row, qkv, expert_column, expert_row, vocab)");
    }
    rule.parallel = *parallel;
  }
  // Every variable of the destination must be determined by the first source.
  for (const auto& variable : rule.name.variables()) {
    if (!rule.sources[0].HasVariable(variable)) {
      return InvalidArgument(where, ": variable {", variable, "} not in the first source");
    }
  }
  if (!rule.stack.empty() &&
      (rule.name.HasVariable(rule.stack) || !rule.sources[0].HasVariable(rule.stack))) {
    return InvalidArgument(where, ": stack variable {", rule.stack,
                           "} must be in the sources and not in the destination name");
  }
  return rule;
}

std::string Hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

Result<json> ParseDocument(const std::string& text, const std::string& origin) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument("model spec ", origin, ": not valid JSON");
  WS_RETURN_IF_ERROR(CheckKeys(
      doc, {"model", "extends", "description", "source_formats", "target_formats"},
      "model spec " + origin));
  if (!doc.value("model", json()).is_string()) {
    return InvalidArgument("model spec ", origin, ": missing string 'model'");
  }
  return doc;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read model spec file ", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

constexpr std::pair<TensorParallelism, std::string_view> kParallelismNames[] = {
    {TensorParallelism::kUnspecified, "unspecified"},
    {TensorParallelism::kReplicated, "replicated"},
    {TensorParallelism::kColumn, "column"},
    {TensorParallelism::kRow, "row"},
    {TensorParallelism::kQkv, "qkv"},
    {TensorParallelism::kExpertColumn, "expert_column"},
    {TensorParallelism::kExpertRow, "expert_row"},
    {TensorParallelism::kVocab, "vocab"},
};

}  // namespace

std::optional<TensorParallelism> TensorParallelismFromName(std::string_view name) {
  for (const auto& [value, text] : kParallelismNames) {
    if (text == name && value != TensorParallelism::kUnspecified) return value;
  }
  return std::nullopt;
}

std::string_view TensorParallelismName(TensorParallelism parallelism) {
  for (const auto& [value, text] : kParallelismNames) {
    if (value == parallelism) return text;
  }
  return "unknown";
}

Result<const SourceFormat*> ModelSpec::FindSourceFormat(const std::string& format) const {
  auto it = source_formats.find(format);
  if (it != source_formats.end()) return &it->second;
  std::string known;
  for (const auto& [n, f] : source_formats) known += (known.empty() ? "" : ", ") + n;
  return NotFound("model ", name, " has no source format '", format, "' (", known, ")");
}

Result<const TargetFormat*> ModelSpec::FindTargetFormat(const std::string& format) const {
  auto it = target_formats.find(format);
  if (it != target_formats.end()) return &it->second;
  std::string known;
  for (const auto& [n, f] : target_formats) known += (known.empty() ? "" : ", ") + n;
  return NotFound("model ", name, " has no target format '", format, "' (", known, ")");
}

ModelSpecLibrary ModelSpecLibrary::Builtin() {
  ModelSpecLibrary library;
  for (const auto& [file, text] : BuiltinModelSpecs()) {
    Status status = library.AddDocument(std::string(text), "builtin " + std::string(file));
    if (!status.ok()) std::abort();  // built-in specs are checked by the tests; never user input
  }
  return library;
}

Status ModelSpecLibrary::AddDocument(const std::string& text, const std::string& origin) {
  WS_ASSIGN_OR_RETURN(json doc, ParseDocument(text, origin));
  documents_[doc["model"].get<std::string>()] = {text, origin};
  return Status::Ok();
}

Status ModelSpecLibrary::AddDirectory(const std::string& directory) {
  std::error_code ec;
  std::set<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory, ec)) {
    if (entry.path().extension() == ".json") files.insert(entry.path());
  }
  if (ec) return NotFound("model spec directory ", directory, ": ", ec.message());
  for (const auto& path : files) {
    WS_ASSIGN_OR_RETURN(std::string text, ReadFile(path.string()));
    WS_RETURN_IF_ERROR(AddDocument(text, path.string()));
  }
  return Status::Ok();
}

Result<ModelSpecLibrary> ModelSpecLibrary::FromEnvironment() {
  ModelSpecLibrary library = Builtin();
  if (const char* path = std::getenv("WEIGHTSYNC_MODEL_PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty()) WS_RETURN_IF_ERROR(library.AddDirectory(dir));
    }
  }
  return library;
}

std::vector<std::string> ModelSpecLibrary::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, doc] : documents_) names.push_back(name);
  return names;
}

Result<ModelSpec> ModelSpecLibrary::Load(const std::string& name) const {
  // Walk up the `extends` chain, then merge from the root down.
  std::vector<json> chain;
  std::vector<std::string> lineage, origins;
  std::string next = name;
  if (name.ends_with(".json")) {
    WS_ASSIGN_OR_RETURN(std::string text, ReadFile(name));
    WS_ASSIGN_OR_RETURN(json doc, ParseDocument(text, name));
    chain.push_back(doc);
    lineage.push_back(doc["model"].get<std::string>());
    origins.push_back(name);
    next = doc.value("extends", "");
  }
  while (!next.empty()) {
    if (std::find(lineage.begin(), lineage.end(), next) != lineage.end()) {
      return InvalidArgument("model spec ", name, ": 'extends' cycle through ", next);
    }
    auto it = documents_.find(next);
    if (it == documents_.end()) {
      std::string known;
      for (const auto& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
      return NotFound("no model spec named '", next, "' (known: ", known, ")");
    }
    WS_ASSIGN_OR_RETURN(json doc, ParseDocument(it->second.text, it->second.origin));
    chain.push_back(doc);
    lineage.push_back(next);
    origins.push_back(it->second.origin);
    next = doc.value("extends", "");
  }

  json merged = {{"source_formats", json::object()}, {"target_formats", json::object()}};
  for (size_t i = chain.size(); i-- > 0;) {
    const json& doc = chain[i];
    if (doc.contains("description")) merged["description"] = doc["description"];
    if (doc.contains("source_formats")) {
      MergeFormats(merged["source_formats"], doc["source_formats"], "rules", "canonical");
    }
    if (doc.contains("target_formats")) {
      MergeFormats(merged["target_formats"], doc["target_formats"], "tensors", "name");
    }
  }
  merged["model"] = lineage.front();

  ModelSpec spec;
  spec.name = lineage.front();
  spec.lineage = lineage;
  spec.description = merged.value("description", "");
  const std::string where = "model spec " + origins.front();
  for (const auto& [format, body] : merged["source_formats"].items()) {
    WS_RETURN_IF_ERROR(CheckKeys(body, {"description", "rules"}, where + " source format " + format));
    SourceFormat& out = spec.source_formats[format];
    out.name = format;
    out.description = body.value("description", "");
    for (size_t r = 0; r < body["rules"].size(); ++r) {
      WS_ASSIGN_OR_RETURN(SourceRule rule,
                          ParseSourceRule(body["rules"][r], StrCat(where, " source format ", format,
                                                                    " rule ", r)));
      out.rules.push_back(std::move(rule));
    }
  }
  for (const auto& [format, body] : merged["target_formats"].items()) {
    WS_RETURN_IF_ERROR(CheckKeys(body, {"description", "tensors"}, where + " target format " + format));
    TargetFormat& out = spec.target_formats[format];
    out.name = format;
    out.description = body.value("description", "");
    for (size_t r = 0; r < body["tensors"].size(); ++r) {
      const json& t = body["tensors"][r];
      WS_ASSIGN_OR_RETURN(TargetRule rule,
                          ParseTargetRule(t, StrCat(where, " target format ", format, " tensor ",
                                                    t.value("name", std::to_string(r)))));
      out.tensors.push_back(std::move(rule));
    }
  }
  std::string canonical = merged.dump();
  spec.hash = Hex64(XXH64(canonical.data(), canonical.size(), 0));
  return spec;
}

}  // namespace weightsync
