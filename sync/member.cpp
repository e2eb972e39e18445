#include "sync/member.hpp"

#include <boost/asio/ip/address.hpp>

#include "discovery/credentials.hpp"
#include "log/logger.hpp"

namespace sluice::sync {
namespace {

using nlohmann::json;
using discovery::Kind;

// The resources sync watches in each member, as discovery names them.
std::vector<discovery::ResourceInfo> sync_resources(bool mcs) {
  std::vector<discovery::ResourceInfo> out;
  for (const auto& info : discovery::watched_resources())
    if (info.kind == Kind::service || info.kind == Kind::service_export || info.kind == Kind::service_import ||
        (mcs && (info.kind == Kind::endpoint_slice || info.kind == Kind::mcs_service_import)))
      out.push_back(info);
  return out;
}

std::string label_of(const json& object, const char* label) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) return {};
  const json& m = object["metadata"];
  auto l = m.find("labels");
  if (l == m.end() || !l->is_object()) return {};
  auto v = l->find(label);
  return v != l->end() && v->is_string() ? v->get<std::string>() : std::string();
}

std::string meta_string(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) return {};
  const json& m = object["metadata"];
  auto it = m.find(key);
  return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Whether `incoming` is not older than `held` by resourceVersion. Versions are opaque to clients in
// general; the API servers we talk to (etcd's revision, the stand-in) use integers, and only then do
// we compare, so that a watch event queued before our own write cannot put the older object back.
bool not_older(const json& incoming, const json& held) {
  const std::string a = meta_string(incoming, "resourceVersion"), b = meta_string(held, "resourceVersion");
  try {
    std::size_t ia = 0, ib = 0;
    const unsigned long long va = std::stoull(a, &ia), vb = std::stoull(b, &ib);
    if (ia == a.size() && ib == b.size()) return va >= vb;
  } catch (const std::exception&) {
  }
  return true;
}

}  // namespace

std::string object_key(const json& object) {
  const std::string ns = meta_string(object, "namespace"), name = meta_string(object, "name");
  return name.empty() ? std::string() : ns + "/" + name;
}

std::string service_key(Kind kind, const json& object) {
  if (kind != Kind::endpoint_slice) return object_key(object);
  std::string service = label_of(object, "kubernetes.io/service-name");
  if (service.empty()) service = label_of(object, "multicluster.kubernetes.io/service-name");
  return service.empty() ? std::string() : meta_string(object, "namespace") + "/" + service;
}

Member::Member(net::any_io_executor executor, MemberConfig config, bool mcs,
               std::function<void(const std::string&)> on_change, std::function<void()> on_state)
    : executor_(std::move(executor)), config_(std::move(config)), key_(config_.key()),
      on_change_(std::move(on_change)), on_state_(std::move(on_state)), mcs_(mcs) {
  gateway_.host = config_.gateway_host;
  gateway_.port = config_.gateway_port;
  boost::system::error_code ec;
  net::ip::make_address(gateway_.host, ec);
  gateway_.ip = ec ? std::string() : gateway_.host;
}

bool Member::set_gateway(const std::string& host, std::uint16_t port) {
  if (host == config_.gateway_host && port == config_.gateway_port) return false;
  config_.gateway_host = host;
  config_.gateway_port = port;
  gateway_.host = host;
  gateway_.port = port;
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  gateway_.ip = ec ? std::string() : host;
  return true;
}

std::string Member::start() {
  discovery::KubeOptions options;
  options.kubeconfig = config_.kubeconfig;
  options.context = config_.context;
  auto creds = discovery::load_credentials(options);
  if (!creds.credentials) return "member " + config_.name + ": " + creds.error;
  std::string error;
  auto tls = discovery::make_tls_context(*creds.credentials, error);
  if (!tls) return "member " + config_.name + ": " + creds.credentials->origin + ": " + error;
  auto credentials = std::make_shared<const discovery::Credentials>(*creds.credentials);
  writer_ = std::make_unique<discovery::ApiConnection>(
      executor_, tls, credentials,
      discovery::ApiConnection::Timeouts{options.connect_timeout, options.request_timeout});
  for (const auto& info : sync_resources(mcs_)) {
    watches_.push_back(std::make_shared<discovery::ResourceWatch>(executor_, info, "", credentials, tls, options,
                                                                  std::weak_ptr<WatchSink>(shared_from_this())));
  }
  log::info("sync: member " + config_.name + " (" + key_ + ") via " + credentials->origin);
  for (auto& w : watches_) w->start();
  return {};
}

void Member::stop() {
  for (auto& w : watches_) w->stop();
  if (writer_) writer_->close();
}

bool Member::synced() const {
  if (watches_.empty()) return false;
  for (const auto& w : watches_)
    if (!w->status().synced && !w->status().absent) return false;
  return true;
}

bool Member::reachable() const {
  if (!synced()) return false;
  for (const auto& w : watches_)
    if (w->status().stale) return false;
  return true;
}

std::vector<discovery::ResourceStatus> Member::watch_status() const {
  std::vector<discovery::ResourceStatus> out;
  for (const auto& w : watches_) out.push_back(w->status());
  return out;
}

Objects* Member::objects_of(Kind kind) {
  switch (kind) {
    case Kind::service: return &services_;
    case Kind::service_export: return &exports_;
    case Kind::service_import: return &imports_;
    case Kind::endpoint_slice: return &slices_;
    case Kind::mcs_service_import: return &mcs_imports_;
    default: return nullptr;
  }
}

const Objects& Member::objects(Kind kind) const {
  static const Objects none;
  const Objects* o = const_cast<Member*>(this)->objects_of(kind);
  return o ? *o : none;
}

void Member::on_replace(Kind kind, const std::string& name_space, const json& items) {
  Objects* objects = objects_of(kind);
  if (!objects) return;
  // Every key before and after the list may have changed.
  std::vector<std::string> changed;
  for (const auto& [key, object] : *objects) changed.push_back(service_key(kind, object));
  Objects fresh;
  for (const json& item : items) {
    if (std::string key = object_key(item); !key.empty()) fresh[key] = item;
  }
  for (const auto& [key, object] : fresh) changed.push_back(service_key(kind, object));
  if (name_space.empty()) {
    objects->swap(fresh);
  } else {
    for (auto it = objects->begin(); it != objects->end();)
      it = it->first.starts_with(name_space + "/") ? objects->erase(it) : std::next(it);
    objects->merge(fresh);
  }
  for (const auto& key : changed) on_change_(key);
}

void Member::on_event(Kind kind, discovery::EventType type, const json& object) {
  Objects* objects = objects_of(kind);
  const std::string key = object_key(object);
  if (!objects || key.empty()) return;
  std::string changed = service_key(kind, object);
  if (type == discovery::EventType::deleted) {
    if (auto it = objects->find(key); it != objects->end() && changed.empty()) changed = service_key(kind, it->second);
    objects->erase(key);
  } else {
    auto it = objects->find(key);
    // A slice whose service label changed belongs to two services: both are recomputed.
    if (it != objects->end()) {
      if (std::string before = service_key(kind, it->second); before != changed) on_change_(before);
    }
    if (it == objects->end()) objects->emplace(key, object);
    else if (not_older(object, it->second)) it->second = object;
  }
  on_change_(changed);
}

void Member::on_state_changed() { update_reachability(); }

void Member::update_reachability() {
  const bool now = reachable();
  if (now == was_reachable_) return;
  if (!now && synced()) {
    unreachable_since_ = Clock::now();
    log::warn("sync: member " + config_.name + " unreachable; its last-known exports are kept for the TTL");
  } else if (now) {
    unreachable_since_ = {};
    log::info("sync: member " + config_.name + " reachable");
  }
  was_reachable_ = now;
  on_state_();
}

void Member::remember(Kind kind, const std::string& key, const json* object) {
  Objects* objects = objects_of(kind);
  if (!objects) return;
  if (!object) {
    objects->erase(key);
    return;
  }
  auto it = objects->find(key);
  if (it == objects->end()) objects->emplace(key, *object);
  else if (not_older(*object, it->second)) it->second = *object;
}

}  // namespace sluice::sync
