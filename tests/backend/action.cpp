#include "tests/backend/action.hpp"

#include <charconv>

namespace sluice::testbackend {

namespace {

constexpr std::uint64_t max_delay_ms = 10 * 60 * 1000;

bool parse_number(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool valid_status(std::uint64_t code) { return code >= 200 && code <= 599; }

// If `path` is `prefix` followed by a number, stores it and returns true.
bool numbered(std::string_view path, std::string_view prefix, std::uint64_t& out, bool& bad) {
  if (path.substr(0, prefix.size()) != prefix) return false;
  bad = !parse_number(path.substr(prefix.size()), out);
  return true;
}

}  // namespace

Action parse_action(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);

  Action action;
  bool bad = false;
  if (path == "/echo") {
    action.kind = Action_kind::echo;
  } else if (path == "/sink") {
    action.kind = Action_kind::sink;
  } else if (path == "/headers") {
    action.kind = Action_kind::headers;
  } else if (path == "/close") {
    action.kind = Action_kind::close;
  } else if (path == "/reset") {
    action.kind = Action_kind::reset;
  } else if (path == "/drop") {
    action.kind = Action_kind::drop;
  } else if (path == "/conn") {
    action.kind = Action_kind::conn;
  } else if (numbered(path, "/bytes/", action.number, bad)) {
    action.kind = Action_kind::bytes;
  } else if (numbered(path, "/chunked/", action.number, bad)) {
    action.kind = Action_kind::chunked;
  } else if (numbered(path, "/status/", action.number, bad)) {
    action.kind = Action_kind::status;
    bad = bad || !valid_status(action.number);
  } else if (numbered(path, "/delay/", action.number, bad)) {
    action.kind = Action_kind::delay;
    bad = bad || action.number > max_delay_ms;
  } else if (numbered(path, "/admin/status/", action.number, bad)) {
    action.kind = Action_kind::admin_status;
    bad = bad || (action.number != 0 && !valid_status(action.number));
  }
  if (bad) action = Action{Action_kind::bad, 0};
  return action;
}

}  // namespace sluice::testbackend
