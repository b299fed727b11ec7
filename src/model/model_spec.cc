#include "model/model_spec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/utf8.h"
#include "model/builtin_model_specs.h"
#include "model/json_fields.h"

namespace weightsync {
namespace {

using nlohmann::json;

Status CheckKeys(const json& object, std::initializer_list<std::string_view> allowed,
                 const std::string& where) {
  if (!object.is_object()) {
    return InvalidArgument(where, ": expected a JSON object, not ", JsonTypeName(object));
  }
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto a : allowed) known |= (a == key);
    if (!known) return InvalidArgument(where, ": unknown key '", EscapeForMessage(key), "'");
  }
  return Status::Ok();
}

// Child entries replace parent entries with the same key field, the rest are appended. Every
// document was checked by CheckDocument, so entries are objects with a string key field.
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

// A typed field of a spec entry; errors name the entry (`where`) and the field.
template <typename T>
Result<T> Field(const json& object, std::string_view key, T fallback, const std::string& where) {
  Result<T> value = FieldOr<T>(object, key, std::move(fallback));
  if (!value.ok()) return value.status().WithContext(where);
  return value;
}

Result<NamePattern> ParsePattern(const json& value, std::string_view field,
                                 const std::string& where) {
  Result<std::string> text = JsonAs<std::string>(value, field);
  if (!text.ok()) return text.status().WithContext(where);
  Result<NamePattern> parsed = NamePattern::Parse(*text);
  if (!parsed.ok()) return parsed.status().WithContext(where);
  return parsed;
}

Status CheckChunk(const json& c, const std::string& where) {
  if (!c.is_array() || c.size() != 2 || !c[0].is_number_integer() || !c[1].is_number_integer() ||
      c[1].get<int64_t>() < 1 || c[0].get<int64_t>() < 0 ||
      c[0].get<int64_t>() >= c[1].get<int64_t>()) {
    return InvalidArgument(where, ": chunk must be [index, count] with 0 <= index < count");
  }
  return Status::Ok();
}

Result<SourceRule> ParseSourceRule(const json& j, const std::string& where) {
  WS_RETURN_IF_ERROR(CheckKeys(j, {"canonical", "source", "select", "chunk"}, where));
  SourceRule rule;
  WS_ASSIGN_OR_RETURN(rule.canonical,
                      ParsePattern(j.value("canonical", json()), "canonical", where));
  WS_ASSIGN_OR_RETURN(rule.source, ParsePattern(j.value("source", json()), "source", where));
  WS_ASSIGN_OR_RETURN(rule.select, Field<std::string>(j, "select", "", where));
  if (!rule.select.empty() && !rule.canonical.HasVariable(rule.select)) {
    return InvalidArgument(where, ": select variable {", EscapeForMessage(rule.select),
                           "} not in the canonical name");
  }
  if (j.contains("chunk")) {
    WS_RETURN_IF_ERROR(CheckChunk(j["chunk"], where));
    rule.chunk = j["chunk"][0].get<int64_t>();
    rule.chunks = j["chunk"][1].get<int64_t>();
  }
  for (const auto& variable : rule.canonical.variables()) {
    if (variable != rule.select && !rule.source.HasVariable(variable)) {
      return InvalidArgument(where, ": canonical variable {", variable, "} not in the source name");
    }
  }
  return rule;
}

Result<std::vector<NamePattern>> ParseSources(const json& j, const std::string& where) {
  const json& sources = j.value("sources", json());
  if (!sources.is_array() || sources.empty()) {
    return InvalidArgument(where, ": 'sources' must be a non-empty list");
  }
  std::vector<NamePattern> patterns;
  for (size_t i = 0; i < sources.size(); ++i) {
    WS_ASSIGN_OR_RETURN(NamePattern pattern,
                        ParsePattern(sources[i], StrCat("sources[", i, "]"), where));
    patterns.push_back(std::move(pattern));
  }
  return patterns;
}

// The typed scalar fields of a target tensor rule.
Status ParseTargetFields(const json& j, const std::string& where, TargetRule& rule) {
  WS_ASSIGN_OR_RETURN(rule.stack, Field<std::string>(j, "stack", "", where));
  WS_ASSIGN_OR_RETURN(int64_t cat_dim, Field<int64_t>(j, "cat_dim", 0, where));
  if (cat_dim != 0 && cat_dim != 1) {
    return InvalidArgument(where, ": cat_dim = ", cat_dim, " must be 0 (rows) or 1 (columns)");
  }
  rule.cat_dim = static_cast<int>(cat_dim);
  WS_ASSIGN_OR_RETURN(rule.optional, Field<bool>(j, "optional", false, where));
  WS_ASSIGN_OR_RETURN(std::string dtype_name, Field<std::string>(j, "dtype", "", where));
  auto dtype = DTypeFromTorchName(dtype_name);
  if (!dtype) {
    return InvalidArgument(where, ": unknown dtype '", EscapeForMessage(dtype_name), "'");
  }
  rule.quantization.destination_dtype = *dtype;
  WS_ASSIGN_OR_RETURN(rule.quantization.scale_suffix,
                      Field<std::string>(j, "scale_suffix", "", where));
  if (j.contains("parallel")) {
    const json& p = j["parallel"];
    auto parallel = p.is_string() ? TensorParallelismFromName(p.get<std::string>()) : std::nullopt;
    if (!parallel) {
      return InvalidArgument(where, ": unknown parallel '", EscapeForMessage(p.dump()),
                             "' (replicated, column, row, qkv, expert_column, expert_row, vocab)");
    }
    rule.parallel = *parallel;
  }
  return Status::Ok();
}

Result<TargetRule> ParseTargetRule(const json& j, const std::string& where) {
  WS_RETURN_IF_ERROR(CheckKeys(
      j, {"name", "sources", "stack", "cat_dim", "dtype", "scale_suffix", "optional", "parallel"},
      where));
  TargetRule rule;
  WS_ASSIGN_OR_RETURN(rule.name, ParsePattern(j.value("name", json()), "name", where));
  WS_ASSIGN_OR_RETURN(rule.sources, ParseSources(j, where));
  WS_RETURN_IF_ERROR(ParseTargetFields(j, where, rule));
  // Every variable of the destination must be determined by the first source.
  for (const auto& variable : rule.name.variables()) {
    if (!rule.sources[0].HasVariable(variable)) {
      return InvalidArgument(where, ": variable {", variable, "} not in the first source");
    }
  }
  if (!rule.stack.empty() &&
      (rule.name.HasVariable(rule.stack) || !rule.sources[0].HasVariable(rule.stack))) {
    return InvalidArgument(where, ": stack variable {", EscapeForMessage(rule.stack),
                           "} must be in the sources and not in the destination name");
  }
  return rule;
}

// "tensor model.norm.weight" for messages, or "tensor 3" when the name is not a string.
std::string TargetLabel(const json& tensor, size_t index) {
  const json& name = tensor.is_object() ? tensor.value("name", json()) : json();
  return "tensor " +
         (name.is_string() ? EscapeForMessage(name.get<std::string>()) : std::to_string(index));
}

// Parses every rule of one format's list (`list`: "rules" or "tensors") with `parse`, appending
// to `out`. Errors name the format and the rule.
template <typename Rule, typename Parse>
Status ParseFormatList(const json& body, const char* list, const std::string& where, Parse parse,
                       std::vector<Rule>& out) {
  auto it = body.find(list);
  if (it == body.end()) return Status::Ok();
  if (!it->is_array()) {
    return InvalidArgument(where, ": '", list, "' must be a list, not ", JsonTypeName(*it));
  }
  for (size_t r = 0; r < it->size(); ++r) {
    const json& entry = (*it)[r];
    const std::string label =
        list == std::string_view("rules") ? StrCat("rule ", r) : TargetLabel(entry, r);
    WS_ASSIGN_OR_RETURN(Rule rule, parse(entry, where + " " + label));
    out.push_back(std::move(rule));
  }
  return Status::Ok();
}

// One format object: {"description": ..., "rules" or "tensors": [...]}.
template <typename Format, typename Parse>
Result<Format> ParseFormat(const std::string& name, const json& body, const char* list,
                           const std::string& where, Parse parse) {
  WS_RETURN_IF_ERROR(CheckKeys(body, {"description", list}, where));
  Format out;
  out.name = name;
  WS_ASSIGN_OR_RETURN(out.description, Field<std::string>(body, "description", "", where));
  if constexpr (std::is_same_v<Format, SourceFormat>) {
    WS_RETURN_IF_ERROR(ParseFormatList(body, list, where, parse, out.rules));
  } else {
    WS_RETURN_IF_ERROR(ParseFormatList(body, list, where, parse, out.tensors));
  }
  return out;
}

// Parses every format of one kind ("source_formats" or "target_formats") of `doc` into `out`.
template <typename Format, typename Parse>
Status ParseFormats(const json& doc, const char* kind, const char* list, const std::string& where,
                    Parse parse, std::map<std::string, Format>& out) {
  auto it = doc.find(kind);
  if (it == doc.end()) return Status::Ok();
  if (!it->is_object()) {
    return InvalidArgument(where, ": '", kind, "' must be an object, not ", JsonTypeName(*it));
  }
  const char* singular =
      kind == std::string_view("source_formats") ? " source format " : " target format ";
  for (const auto& [name, body] : it->items()) {
    WS_ASSIGN_OR_RETURN(
        out[name],
        ParseFormat<Format>(name, body, list, where + singular + EscapeForMessage(name), parse));
  }
  return Status::Ok();
}

// A spec (one document, or the merge of a chain) parsed into `spec`'s formats.
Status ParseSpecFormats(const json& doc, const std::string& where, ModelSpec& spec) {
  WS_RETURN_IF_ERROR(
      ParseFormats(doc, "source_formats", "rules", where, ParseSourceRule, spec.source_formats));
  return ParseFormats(doc, "target_formats", "tensors", where, ParseTargetRule,
                      spec.target_formats);
}

// Every field of one document has its type and every rule parses, before any merging.
Status CheckDocument(const json& doc, const std::string& where) {
  WS_RETURN_IF_ERROR(Field<std::string>(doc, "extends", "", where).status());
  WS_RETURN_IF_ERROR(Field<std::string>(doc, "description", "", where).status());
  ModelSpec scratch;
  return ParseSpecFormats(doc, where, scratch);
}

std::string Hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

Result<json> ParseDocument(const std::string& text, const std::string& origin) {
  const std::string where = "model spec " + EscapeForMessage(origin);
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument(where, ": not valid JSON");
  WS_RETURN_IF_ERROR(CheckKeys(
      doc, {"model", "extends", "description", "source_formats", "target_formats"}, where));
  if (!doc.contains("model")) return InvalidArgument(where, ": missing string 'model'");
  WS_RETURN_IF_ERROR(Field<std::string>(doc, "model", "", where).status());
  return doc;
}

// A document of an `extends` chain, parsed and checked whole before it is merged.
Result<json> ParseChainDocument(const std::string& text, const std::string& origin) {
  WS_ASSIGN_OR_RETURN(json doc, ParseDocument(text, origin));
  WS_RETURN_IF_ERROR(CheckDocument(doc, "model spec " + EscapeForMessage(origin)));
  return doc;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read model spec file ", EscapeForMessage(path));
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
  return NotFound("model ", EscapeForMessage(name), " has no source format '",
                  EscapeForMessage(format), "' (", EscapeForMessage(known), ")");
}

Result<const TargetFormat*> ModelSpec::FindTargetFormat(const std::string& format) const {
  auto it = target_formats.find(format);
  if (it != target_formats.end()) return &it->second;
  std::string known;
  for (const auto& [n, f] : target_formats) known += (known.empty() ? "" : ", ") + n;
  return NotFound("model ", EscapeForMessage(name), " has no target format '",
                  EscapeForMessage(format), "' (", EscapeForMessage(known), ")");
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
  if (ec) {
    return NotFound("model spec directory ", EscapeForMessage(directory), ": ", ec.message());
  }
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
    WS_ASSIGN_OR_RETURN(json doc, ParseChainDocument(text, name));
    chain.push_back(doc);
    lineage.push_back(doc["model"].get<std::string>());
    origins.push_back(name);
    next = doc.value("extends", "");
  }
  while (!next.empty()) {
    if (std::find(lineage.begin(), lineage.end(), next) != lineage.end()) {
      return InvalidArgument("model spec ", EscapeForMessage(name), ": 'extends' cycle through ",
                             EscapeForMessage(next));
    }
    auto it = documents_.find(next);
    if (it == documents_.end()) {
      std::string known;
      for (const auto& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
      return NotFound("no model spec named '", EscapeForMessage(next),
                      "' (known: ", EscapeForMessage(known), ")");
    }
    WS_ASSIGN_OR_RETURN(json doc, ParseChainDocument(it->second.text, it->second.origin));
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
  WS_RETURN_IF_ERROR(
      ParseSpecFormats(merged, "model spec " + EscapeForMessage(origins.front()), spec));
  std::string canonical = merged.dump();
  spec.hash = Hex64(XXH64(canonical.data(), canonical.size(), 0));
  return spec;
}

}  // namespace weightsync
