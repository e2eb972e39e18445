// Prometheus text exposition format (version 0.0.4), written by every layer that renders metrics:
// proxy/ (/stats), embed/ (health checks) and discovery/ (the Kubernetes source). Standard library only.
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::prometheus {

enum class Type { counter, gauge };

struct Label {
  std::string_view name;   // a label name ([a-zA-Z_][a-zA-Z0-9_]*), written as is
  std::string_view value;  // any text: always escaped
};

// Appends `value` escaped as a label value: backslash -> \\, double quote -> \", newline -> \n.
void append_label_value(std::string& out, std::string_view value);

// Writes metric families into a string: each family's # HELP and # TYPE lines once, then its samples
// (`name{label="value",...} value`). One writer per exposition (an admin /stats page), so that a family
// has one header however many renderers write to it. A family's samples must follow its family() call
// without another family in between, as the format wants a family's lines together. Not thread-safe:
// one thread at a time (the admin's).
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  // Starts family `name` (a metric name, written as is): "# HELP name help" (help escaped: backslash,
  // newline) and "# TYPE name counter|gauge", unless this writer has written them already; the samples
  // that follow belong to it.
  void family(std::string_view name, Type type, std::string_view help);

  // One sample of the current family. Integers are written exactly (bool as 1 or 0); doubles in their shortest form that
  // reads back the same ("0.5", "1e+20"), NaN and infinities as "NaN", "+Inf", "-Inf".
  void sample(std::initializer_list<Label> labels, double value);
  template <std::integral T>
  void sample(std::initializer_list<Label> labels, T value) {
    if constexpr (std::same_as<T, bool>) {
      write_sample(labels, value ? "1" : "0");
    } else {
      char text[24];  // 20 digits and a sign at most
      const auto end = std::to_chars(text, text + sizeof text, value).ptr;
      write_sample(labels, std::string_view(text, static_cast<std::size_t>(end - text)));
    }
  }
  // A sample without labels.
  template <class T>
  void sample(T value) {
    sample({}, value);
  }

 private:
  // `name{labels} value` of the current family.
  void write_sample(std::initializer_list<Label> labels, std::string_view value);

  std::string& out_;
  std::string current_;                // the family samples go to
  std::vector<std::string> families_;  // every family whose header is written
};

}  // namespace sluice::prometheus
