#include "discovery/resource_watch.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "discovery/line_splitter.hpp"
#include "log/logger.hpp"

namespace sluice::discovery {
namespace {

using nlohmann::json;
using boost::system::error_code;

constexpr std::size_t max_list_body = 256 * 1024 * 1024;
// A watch that the server ends sooner than this after it began, with nothing received, is treated as a
// failure (backoff) rather than a normal timeout, so a misbehaving server cannot make us spin.
constexpr std::chrono::seconds min_healthy_watch{1};

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// "HTTP 403: <Status.message>" from an error response.
std::string http_error(unsigned status, const std::string& body) {
  std::string out = "HTTP " + std::to_string(status);
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) out += ": " + j["message"].get<std::string>();
  if (status == 401) out += " (check the token or client certificate)";
  return out;
}

std::string resource_version_of(const json& object) {
  if (!object.is_object()) return {};
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return {};
  auto rv = m->find("resourceVersion");
  return rv != m->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

}  // namespace

const std::vector<ResourceInfo>& watched_resources() {
  static const std::vector<ResourceInfo> resources = {
      {Kind::service, "/api/v1", "services", "services"},
      {Kind::endpoint_slice, "/apis/discovery.k8s.io/v1", "endpointslices", "endpointslices.discovery.k8s.io"},
      {Kind::service_import, "/apis/flomesh.io/v1alpha1", "serviceimports", "serviceimports.flomesh.io"},
      {Kind::service_export, "/apis/flomesh.io/v1alpha1", "serviceexports", "serviceexports.flomesh.io"},
      {Kind::traffic_policy, "/apis/flomesh.io/v1alpha1", "globaltrafficpolicies", "globaltrafficpolicies.flomesh.io"},
      {Kind::mcs_service_import, "/apis/multicluster.x-k8s.io/v1alpha1", "serviceimports",
       "serviceimports.multicluster.x-k8s.io"},
  };
  return resources;
}

ResourceWatch::ResourceWatch(net::any_io_executor executor, ResourceInfo info, std::string name_space,
                             std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls,
                             const KubeOptions& options, std::weak_ptr<WatchSink> sink)
    : info_(std::move(info)), name_space_(std::move(name_space)), options_(options), sink_(std::move(sink)),
      connection_(executor, std::move(tls), std::move(credentials),
                  ApiConnection::Timeouts{options.connect_timeout, options.request_timeout}),
      timer_(executor) {
  status_.resource = info_.display;
  status_.name_space = name_space_;
}

void ResourceWatch::start() {
  net::co_spawn(timer_.get_executor(), [self = shared_from_this()]() { return self->run(); }, net::detached);
}

void ResourceWatch::stop() {
  stopped_ = true;
  timer_.cancel();
  connection_.close();
  status_.connected = false;
}

std::string ResourceWatch::path() const {
  return info_.api_prefix + (name_space_.empty() ? "" : "/namespaces/" + name_space_) + "/" + info_.plural;
}

void ResourceWatch::set_stale(bool stale) {
  if (status_.stale == stale) return;
  status_.stale = stale;
  if (auto sink = sink_.lock()) sink->on_state_changed();
}

void ResourceWatch::unauthorized() {
  if (auto sink = sink_.lock()) sink->on_unauthorized();
}

void ResourceWatch::fail(const std::string& error) {
  ++status_.failures;
  status_.last_error = error;
  // Only while the source lives: a watch ending after stop() has nothing to say.
  if (!sink_.expired()) {
    log::warn("kubernetes: " + info_.display + (name_space_.empty() ? "" : " in " + name_space_) + ": " + error);
  }
  set_stale(true);
}

net::awaitable<void> ResourceWatch::sleep(milliseconds delay) {
  error_code ec;
  timer_.expires_after(delay);
  co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
}

net::awaitable<void> ResourceWatch::backoff_sleep() {
  const auto delay = backoff_.next();
  waiting_for_api_ = transport_failure_;
  if (waiting_for_api_) {
    if (auto sink = sink_.lock()) sink->on_api_lost();
  }
  co_await sleep(delay);
  waiting_for_api_ = false;
}

void ResourceWatch::wake() {
  if (waiting_for_api_ && !stopped_) timer_.cancel();
}

void ResourceWatch::set_credentials(std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls) {
  connection_.set_credentials(std::move(credentials), std::move(tls));
}

net::awaitable<void> ResourceWatch::run() {
  auto self = shared_from_this();  // alive while the loop runs
  bool need_list = true;
  while (!stopped_) {
    if (need_list) {
      Outcome r = co_await list();
      if (stopped_ || r == Outcome::stopped) break;
      if (r == Outcome::absent) {
        co_await sleep(options_.absent_retry);
        continue;
      }
      if (r != Outcome::ok) {
        co_await backoff_sleep();
        continue;
      }
      need_list = false;
    }
    auto began = std::chrono::steady_clock::now();
    std::uint64_t events_before = status_.events;
    Outcome r = co_await watch();
    if (stopped_ || r == Outcome::stopped) break;
    switch (r) {
      case Outcome::ok:
        if (std::chrono::steady_clock::now() - began < min_healthy_watch && status_.events == events_before)
          co_await backoff_sleep();
        break;
      case Outcome::gone:
        need_list = true;
        break;
      case Outcome::absent:
        need_list = true;
        co_await sleep(options_.absent_retry);
        break;
      case Outcome::failed_relist:
        need_list = true;
        co_await backoff_sleep();
        break;
      default:
        co_await backoff_sleep();
        break;
    }
  }
}

net::awaitable<ResourceWatch::Outcome> ResourceWatch::list() {
  json items = json::array();
  std::string cont;
  std::string rv;
  for (int restarts = 0;;) {
    std::string target = path() + "?limit=" + std::to_string(options_.list_page_size);
    if (!cont.empty()) target += "&continue=" + url_encode(cont);
    error_code ec;
    ApiResponse resp = co_await connection_.get(target, max_list_body, ec);
    if (stopped_) co_return Outcome::stopped;
    transport_failure_ = static_cast<bool>(ec);
    if (ec) {
      std::string detail = connection_.detail().empty() ? ec.message() : connection_.detail();
      fail("list: " + detail);
      co_return Outcome::failed;
    }
    if (resp.status == 404) {
      if (!status_.absent) {
        status_.absent = true;
        if (auto sink = sink_.lock()) {
          if (!absent_warned_)
            log::warn("kubernetes: " + info_.display + " is not served (CRD not installed?); retrying every " +
                      std::to_string(options_.absent_retry.count()) + " s");
          sink->on_state_changed();
        }
        absent_warned_ = true;
      }
      co_return Outcome::absent;
    }
    if (resp.status == 410 && !cont.empty() && restarts++ < 3) {
      // The continue token expired mid-pagination: start the list over for a consistent snapshot.
      items = json::array();
      cont.clear();
      continue;
    }
    if (resp.status != 200) {
      fail("list: " + http_error(resp.status, resp.body));
      if (resp.status == 401) unauthorized();
      co_return Outcome::failed;
    }
    json page = json::parse(resp.body, nullptr, false);
    if (!page.is_object() || (page.contains("items") && !page["items"].is_array() && !page["items"].is_null())) {
      fail("list: response is not a JSON list");
      co_return Outcome::failed;
    }
    if (page.contains("items") && page["items"].is_array())
      for (auto& item : page["items"]) items.push_back(std::move(item));
    rv = resource_version_of(page);
    cont.clear();
    if (auto m = page.find("metadata"); m != page.end() && m->is_object())
      if (auto c = m->find("continue"); c != m->end() && c->is_string()) cont = c->get<std::string>();
    if (cont.empty()) break;
  }
  resource_version_ = rv;
  if (status_.absent) {
    status_.absent = false;
    if (!sink_.expired()) log::info("kubernetes: " + info_.display + " is served now");
  }
  if (listed_once_) ++status_.relists;
  listed_once_ = true;
  status_.synced = true;
  if (auto sink = sink_.lock()) {
    sink->on_replace(info_.kind, name_space_, items);
    sink->on_state_changed();
  }
  set_stale(false);
  co_return Outcome::ok;
}

bool ResourceWatch::handle_line(std::string_view line, Outcome& outcome) {
  json ev = json::parse(line, nullptr, false);
  if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string()) {
    fail("watch: malformed event line");
    outcome = Outcome::failed;
    return false;
  }
  const std::string type = ev["type"].get<std::string>();
  static const json no_object;
  const json& object = ev.contains("object") ? ev["object"] : no_object;
  if (type == "ERROR") {
    int code = object.is_object() && object.contains("code") && object["code"].is_number_integer()
                   ? object["code"].get<int>() : 0;
    if (code == 410) {
      outcome = Outcome::gone;  // our resourceVersion is too old: relist
      return false;
    }
    std::string message = object.is_object() && object.contains("message") && object["message"].is_string()
                              ? object["message"].get<std::string>() : std::string("unknown");
    fail("watch: ERROR event " + std::to_string(code) + ": " + message);
    outcome = Outcome::failed;
    return false;
  }
  if (auto rv = resource_version_of(object); !rv.empty()) resource_version_ = rv;
  if (type == "BOOKMARK") return true;
  EventType t;
  if (type == "ADDED") t = EventType::added;
  else if (type == "MODIFIED") t = EventType::modified;
  else if (type == "DELETED") t = EventType::deleted;
  else return true;  // unknown event types are ignored, as client-go does
  ++status_.events;
  if (auto sink = sink_.lock()) sink->on_event(info_.kind, t, object);
  return true;
}

net::awaitable<ResourceWatch::Outcome> ResourceWatch::watch() {
  std::uniform_int_distribution<std::int64_t> jitter(0, options_.watch_timeout_jitter.count());
  auto timeout = options_.watch_timeout + std::chrono::seconds(jitter(rng_));
  std::string target = path() + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=" +
                       std::to_string(timeout.count()) + "&resourceVersion=" + url_encode(resource_version_);
  if (watched_once_) ++status_.watch_restarts;
  watched_once_ = true;

  Outcome outcome = Outcome::ok;
  LineSplitter splitter;
  bool go_on = true;
  std::function<bool(std::string_view)> on_data = [&](std::string_view chunk) {
    if (chunk.empty()) {  // the 200 header: the watch is established
      status_.connected = true;
      backoff_.reset();
      set_stale(false);
      return true;
    }
    if (!splitter.feed(chunk, [&](std::string_view line) {
          if (go_on) go_on = handle_line(line, outcome);
        })) {
      fail("watch: event line too long");
      return false;
    }
    return go_on;
  };
  error_code ec;
  // The server ends the watch after `timeout`; silence beyond that (plus the request timeout) is a
  // dead connection.
  ApiResponse resp = co_await connection_.stream(target, timeout + options_.request_timeout, on_data, ec);
  status_.connected = false;
  if (stopped_) co_return Outcome::stopped;
  transport_failure_ = static_cast<bool>(ec) && outcome == Outcome::ok;
  if (outcome != Outcome::ok) co_return outcome;
  if (ec) {
    std::string detail = connection_.detail().empty() ? ec.message() : connection_.detail();
    fail("watch: " + detail);
    co_return Outcome::failed;
  }
  if (resp.status == 410) co_return Outcome::gone;
  if (resp.status == 404) co_return Outcome::absent;
  if (resp.status != 200) {
    // E.g. 504 ResourceVersionTooLarge from a restarted server, or a 5xx: the RV cannot be trusted.
    fail("watch: " + http_error(resp.status, resp.body));
    if (resp.status == 401) unauthorized();
    co_return Outcome::failed_relist;
  }
  if (splitter.pending() > 0) {
    fail("watch: stream ended inside an event");
    co_return Outcome::failed;
  }
  co_return Outcome::ok;
}

}  // namespace sluice::discovery
