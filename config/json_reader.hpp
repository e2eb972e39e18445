// Path-tracking readers over nlohmann::json, used by parse.cpp (internal).
//
// An ObjectReader walks one JSON object: each typed call reads one key, checks
// its type and range, stores it into a struct field (leaving the in-class
// default when the key is absent) and records errors as "path: problem".
// Every key asked for is "known"; when the reader goes out of scope, any key
// of the object that nobody asked for is reported as unknown, so a typo never
// passes silently. Struct parsing is then one line per key:
//
//   void parse_listener(ObjectReader& r, Listener& l) {
//     r.string("name", l.name, required);
//     r.integer("port", l.port, 1, 65535, required);
//   }
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/errors.hpp"
#include "config/text.hpp"

namespace sluice::config {

using json = nlohmann::json;

enum class Need { optional, required };
inline constexpr Need required = Need::required;

// Parses JSON TEXT. On malformed text adds the parser's message (with line
// and column) at the document path and returns nullopt. A key repeated within
// one object is an error too ("listeners[0].port: duplicate key"): JSON
// parsers keep one of them silently, which hides an edit gone wrong.
std::optional<json> parse_json(std::string_view text, Errors& errors);

// Short text for a value in messages: strings quoted, numbers as written,
// "an object", "an array", "null".
std::string describe(const json& value);

// Scalar readers: on a wrong type or range they add one error at PATH and
// return false, leaving OUT unchanged.
bool read_string(const json& value, std::string_view path, Errors& errors, std::string& out);
bool read_bool(const json& value, std::string_view path, Errors& errors, bool& out);
bool read_integer(const json& value, std::string_view path, Errors& errors, std::int64_t lo,
                  std::int64_t hi, std::int64_t& out);
bool read_number(const json& value, std::string_view path, Errors& errors, double lo, double hi,
                 double& out);
bool read_duration(const json& value, std::string_view path, Errors& errors,
                   std::chrono::milliseconds& out);
// Adds `expected one of "a", "b", got "x"`.
void add_enum_error(std::string_view path, Errors& errors, const std::vector<std::string_view>& names,
                    std::string_view got);

// NAMES: one of config/text.hpp's tables.
template <class E>
bool read_enum(const json& value, std::string_view path, Errors& errors,
               std::type_identity_t<std::span<const EnumName<E>>> names, E& out) {
  std::string text;
  if (!read_string(value, path, errors, text)) return false;
  std::vector<std::string_view> spellings;
  for (const auto& n : names) {
    if (n.name == text) {
      out = n.value;
      return true;
    }
    spellings.push_back(n.name);
  }
  add_enum_error(path, errors, spellings, text);
  return false;
}

class ObjectReader {
 public:
  // When VALUE is not an object, reports "expected an object" once; every
  // read then does nothing.
  ObjectReader(const json& value, std::string path, Errors& errors);
  // Reports the keys nobody asked for.
  ~ObjectReader();
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  bool valid() const { return object_ != nullptr; }
  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const { return join_path(path_, key); }
  Errors& errors() { return errors_; }
  // True when no error was added since this reader was made (nested readers
  // included): cross-field checks run only on values that were read.
  bool clean() const { return errors_.size() == errors_at_start_; }
  // Adds an error at KEY's path.
  void error(std::string_view key, std::string_view problem) { errors_.add(path_of(key), problem); }

  // Marks KEY known and returns its value, nullptr when absent ("required"
  // reported when NEED says so).
  const json* take(std::string_view key, Need need = Need::optional);

  void string(std::string_view key, std::string& out, Need need = Need::optional);
  void boolean(std::string_view key, bool& out);
  void number(std::string_view key, double& out, double lo, double hi);
  void duration(std::string_view key, std::chrono::milliseconds& out);
  void strings(std::string_view key, std::vector<std::string>& out, Need need = Need::optional);

  template <class T>
  void integer(std::string_view key, T& out, std::int64_t lo, std::int64_t hi, Need need = Need::optional) {
    std::int64_t v = 0;
    if (const json* j = take(key, need); j && read_integer(*j, path_of(key), errors_, lo, hi, v)) {
      out = static_cast<T>(v);
    }
  }
  template <class T>
  void integer(std::string_view key, std::optional<T>& out, std::int64_t lo, std::int64_t hi) {
    std::int64_t v = 0;
    if (const json* j = take(key); j && read_integer(*j, path_of(key), errors_, lo, hi, v)) {
      out = static_cast<T>(v);
    }
  }

  template <class E>
  void enumeration(std::string_view key, E& out, std::type_identity_t<std::span<const EnumName<E>>> names) {
    if (const json* j = take(key)) read_enum(*j, path_of(key), errors_, names, out);
  }

  // PARSE(ObjectReader&, T&) fills OUT from the nested object at KEY.
  template <class T, class Parse>
  void object(std::string_view key, T& out, Parse&& parse) {
    if (const json* j = take(key)) {
      ObjectReader nested(*j, path_of(key), errors_);
      if (nested.valid()) parse(nested, out);
    }
  }
  template <class T, class Parse>
  void optional_object(std::string_view key, std::optional<T>& out, Parse&& parse) {
    if (const json* j = take(key)) {
      ObjectReader nested(*j, path_of(key), errors_);
      if (nested.valid()) parse(nested, out.emplace());
    }
  }

  // An array whose elements are read by PARSE(const json&, const std::string& path, Errors&, T&);
  // an element that fails to parse is still appended so indices in later messages stay right.
  template <class T, class Parse>
  void array(std::string_view key, std::vector<T>& out, Parse&& parse, Need need = Need::optional) {
    const json* j = take(key, need);
    if (!j) return;
    const std::string path = path_of(key);
    if (!j->is_array()) {
      errors_.add(path, "expected an array, got " + describe(*j));
      return;
    }
    out.clear();
    out.reserve(j->size());
    for (std::size_t i = 0; i < j->size(); ++i) {
      parse((*j)[i], index_path(path, i), errors_, out.emplace_back());
    }
  }
  // An array of objects, each read by PARSE(ObjectReader&, T&).
  template <class T, class Parse>
  void objects(std::string_view key, std::vector<T>& out, Parse&& parse, Need need = Need::optional) {
    array(key, out, [&parse](const json& v, const std::string& path, Errors& errors, T& item) {
      ObjectReader nested(v, path, errors);
      if (nested.valid()) parse(nested, item);
    }, need);
  }

 private:
  const json* object_;  // nullptr when the value was not an object
  std::string path_;
  Errors& errors_;
  std::size_t errors_at_start_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace sluice::config
