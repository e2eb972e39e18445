#include "config/json_reader.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "config/parse.hpp"

namespace sluice::config {
namespace {

// Strings longer than this are cut in messages: the path already says where.
constexpr std::size_t max_described_chars = 60;

std::string format_number(double d) {
  std::ostringstream out;
  out << d;
  return out.str();
}

std::string range_text(std::int64_t lo, std::int64_t hi) {
  if (hi == std::numeric_limits<std::int64_t>::max()) return "at least " + std::to_string(lo);
  return std::to_string(lo) + ".." + std::to_string(hi);
}

// Levenshtein distance, for "did you mean" on unknown keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Follows the parser's events to know the path of each key, for duplicates.
class DuplicateKeyFinder {
 public:
  explicit DuplicateKeyFinder(std::vector<std::string>& paths) : paths_(paths) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames_.emplace_back().array = false; break;
      case json::parse_event_t::array_start: frames_.emplace_back().array = true; break;
      case json::parse_event_t::key: {
        Frame& top = frames_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) paths_.push_back(path());
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        next_element();
        break;
      case json::parse_event_t::value: next_element(); break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array = false;
    std::size_t index = 0;
    std::string key;
    std::set<std::string> keys;
  };

  void next_element() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  // The path of the current key or element.
  std::string path() const {
    std::string p;
    for (const Frame& f : frames_) p = f.array ? index_path(p, f.index) : join_path(p, f.key);
    return p;
  }

  std::vector<std::string>& paths_;  // of the repeated keys
  std::vector<Frame> frames_;
};

// nlohmann's message starts with "[json.exception.parse_error.101] "; the
// rest ("parse error at line 3, column 5: ...") is what a user needs.
std::string strip_exception_tag(std::string message) {
  if (!message.empty() && message.front() == '[') {
    if (const auto end = message.find("] "); end != std::string::npos) message.erase(0, end + 2);
  }
  return message;
}

}  // namespace

std::optional<json> parse_json(std::string_view text, Errors& errors) {
  std::vector<std::string> duplicates;
  try {
    json document = json::parse(text.begin(), text.end(), DuplicateKeyFinder(duplicates));
    for (const auto& path : duplicates) errors.add(path, "duplicate key");
    return document;
  } catch (const json::exception& e) {
    errors.add("", strip_exception_tag(e.what()));
    return std::nullopt;
  }
}

std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::null: return "null";
    case json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      if (s.size() <= max_described_chars) return value.dump();
      // Cut at a character's start: half a UTF-8 sequence made dump() throw (type_error 316) out of
      // parse_config, so a long non-ASCII string where another type belongs crashed sluice --check and
      // a reload (found by tests/fuzz/fuzz_config).
      std::size_t cut = max_described_chars;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      return json(s.substr(0, cut) + "...").dump();
    }
    default: return value.dump();
  }
}

bool read_string(const json& value, std::string_view path, Errors& errors, std::string& out) {
  if (!value.is_string()) {
    errors.add(path, "expected a string, got " + describe(value));
    return false;
  }
  out = value.get<std::string>();
  return true;
}

bool read_bool(const json& value, std::string_view path, Errors& errors, bool& out) {
  if (!value.is_boolean()) {
    errors.add(path, "expected true or false, got " + describe(value));
    return false;
  }
  out = value.get<bool>();
  return true;
}

bool read_integer(const json& value, std::string_view path, Errors& errors, std::int64_t lo,
                  std::int64_t hi, std::int64_t& out) {
  if (!value.is_number_integer()) {
    errors.add(path, "expected an integer, got " + describe(value));
    return false;
  }
  bool in_range = false;
  std::int64_t v = 0;
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    in_range = u <= static_cast<std::uint64_t>(hi) && (lo <= 0 || u >= static_cast<std::uint64_t>(lo));
    v = static_cast<std::int64_t>(u);
  } else {
    v = value.get<std::int64_t>();
    in_range = v >= lo && v <= hi;
  }
  if (!in_range) {
    errors.add(path, "expected " + range_text(lo, hi) + ", got " + value.dump());
    return false;
  }
  out = v;
  return true;
}

bool read_number(const json& value, std::string_view path, Errors& errors, double lo, double hi,
                 double& out) {
  if (!value.is_number()) {
    errors.add(path, "expected a number, got " + describe(value));
    return false;
  }
  const auto v = value.get<double>();
  if (v < lo || v > hi) {
    const std::string range = hi == std::numeric_limits<double>::max()
                                  ? "at least " + format_number(lo)
                                  : format_number(lo) + ".." + format_number(hi);
    errors.add(path, "expected " + range + ", got " + value.dump());
    return false;
  }
  out = v;
  return true;
}

bool read_duration(const json& value, std::string_view path, Errors& errors,
                   std::chrono::milliseconds& out) {
  std::optional<std::chrono::milliseconds> d;
  if (value.is_string()) d = parse_duration(value.get_ref<const std::string&>());
  if (!d) {
    errors.add(path, "expected a duration like \"2s\", got " + describe(value));
    return false;
  }
  out = *d;
  return true;
}

void add_enum_error(std::string_view path, Errors& errors, const std::vector<std::string_view>& names,
                    std::string_view got) {
  std::string problem = "expected one of ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) problem += ", ";
    problem += '"';
    problem += names[i];
    problem += '"';
  }
  problem += ", got ";
  problem += json(std::string(got)).dump();
  errors.add(path, problem);
}

ObjectReader::ObjectReader(const json& value, std::string path, Errors& errors)
    : object_(value.is_object() ? &value : nullptr),
      path_(std::move(path)),
      errors_(errors),
      errors_at_start_(errors.size()) {
  if (!object_) errors_.add(path_, "expected an object, got " + describe(value));
}

ObjectReader::~ObjectReader() {
  if (!object_) return;
  for (const auto& item : object_->items()) {
    if (known_.count(item.key())) continue;
    std::string problem = "unknown key";
    // Suggest the closest known key when it is a plausible typo (about one
    // edit in three characters).
    std::string_view best;
    std::size_t best_distance = std::max<std::size_t>(2, item.key().size() / 3) + 1;
    for (const auto& k : known_) {
      const std::size_t d = edit_distance(item.key(), k);
      if (d < best_distance) {
        best_distance = d;
        best = k;
      }
    }
    if (!best.empty()) problem += " (did you mean \"" + std::string(best) + "\"?)";
    errors_.add(path_of(item.key()), problem);
  }
}

const json* ObjectReader::take(std::string_view key, Need need) {
  if (!object_) return nullptr;
  known_.emplace(key);
  const auto it = object_->find(key);
  if (it == object_->end()) {
    if (need == Need::required) errors_.add(path_of(key), "required");
    return nullptr;
  }
  return &*it;
}

void ObjectReader::string(std::string_view key, std::string& out, Need need) {
  if (const json* j = take(key, need)) read_string(*j, path_of(key), errors_, out);
}

void ObjectReader::boolean(std::string_view key, bool& out) {
  if (const json* j = take(key)) read_bool(*j, path_of(key), errors_, out);
}

void ObjectReader::number(std::string_view key, double& out, double lo, double hi) {
  if (const json* j = take(key)) read_number(*j, path_of(key), errors_, lo, hi, out);
}

void ObjectReader::duration(std::string_view key, std::chrono::milliseconds& out) {
  if (const json* j = take(key)) read_duration(*j, path_of(key), errors_, out);
}

void ObjectReader::strings(std::string_view key, std::vector<std::string>& out, Need need) {
  array(key, out, [](const json& v, const std::string& path, Errors& errors, std::string& item) {
    read_string(v, path, errors, item);
  }, need);
}

}  // namespace sluice::config
