#include "prometheus/writer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace sluice::prometheus {
namespace {

// Backslash and newline escaped, and the double quote too when `quote` (a label value; HELP text keeps
// its quotes).
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char c : text) {
    if (c == '\\' || (quote && c == '"')) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) { append_escaped(out, value, true); }

void Writer::family(std::string_view name, Type type, std::string_view help) {
  current_.assign(name);
  if (std::find(families_.begin(), families_.end(), name) != families_.end()) return;
  families_.emplace_back(name);
  out_.append("# HELP ").append(name).append(" ");
  append_escaped(out_, help, false);
  out_.append("\n# TYPE ").append(name).append(type == Type::counter ? " counter\n" : " gauge\n");
}

void Writer::sample(std::initializer_list<Label> labels, double value) {
  if (std::isnan(value)) return write_sample(labels, "NaN");
  if (std::isinf(value)) return write_sample(labels, value > 0 ? "+Inf" : "-Inf");
  char text[32];  // the shortest round-trip form: 24 characters at most ("-2.2250738585072014e-308")
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  write_sample(labels, std::string_view(text, static_cast<std::size_t>(end - text)));
}

void Writer::write_sample(std::initializer_list<Label> labels, std::string_view value) {
  out_.append(current_);
  char sep = '{';
  for (const Label& l : labels) {
    out_ += sep;
    out_.append(l.name).append("=\"");
    append_label_value(out_, l.value);
    out_ += '"';
    sep = ',';
  }
  if (labels.size() != 0) out_ += '}';
  out_.append(" ").append(value).append("\n");
}

}  // namespace sluice::prometheus
