// The writes of the Controller: managed objects (create, PUT with resourceVersion, /status, 409
// re-read, precondition deletes), ServiceExport conditions, and the MCS form.
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "log/logger.hpp"
#include "sync/controller.hpp"
#include "sync/mcs.hpp"

namespace sluice::sync {
namespace {

using nlohmann::json;
using boost::system::error_code;
using discovery::Kind;

constexpr std::size_t max_body = 16 * 1024 * 1024;
// A write answered 409 is re-read and retried this many times within one pass; beyond, the key
// is retried with backoff.
constexpr int max_attempts = 5;

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string exports_path(const std::string& ns) { return "/apis/flomesh.io/v1alpha1/namespaces/" + ns + "/serviceexports"; }

std::string describe_failure(unsigned status, const std::string& body, const error_code& ec,
                             const discovery::ApiConnection& c) {
  if (ec) return c.detail().empty() ? ec.message() : c.detail();
  std::string out = "HTTP " + std::to_string(status);
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) out += ": " + j["message"].get<std::string>();
  return out;
}

std::string label_of(const json& object, const char* label) {
  const json* m = object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  if (!m || !m->is_object() || !m->contains("labels") || !(*m)["labels"].is_object()) return {};
  const json& l = (*m)["labels"];
  auto it = l.find(label);
  return it != l.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::pair<std::string, std::string> split_key(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

const Controller::Collection& Controller::flomesh_imports() {
  static const Collection c{Kind::service_import, "ServiceImport", "/apis/flomesh.io/v1alpha1", "serviceimports",
                            {"spec"}, true};
  return c;
}
const Controller::Collection& Controller::mcs_imports() {
  static const Collection c{Kind::mcs_service_import, "ServiceImport.multicluster.x-k8s.io",
                            "/apis/multicluster.x-k8s.io/v1alpha1", "serviceimports", {"spec"}, true};
  return c;
}
const Controller::Collection& Controller::mcs_slices() {
  static const Collection c{Kind::endpoint_slice, "EndpointSlice", "/apis/discovery.k8s.io/v1", "endpointslices",
                            {"addressType", "ports", "endpoints"}, false};
  return c;
}

net::awaitable<void> Controller::write_managed(Member& m, const Collection& c, const std::string& key,
                                               const json& desired) {
  const auto [ns, name] = split_key(key);
  auto& conn = m.writer();
  const std::string what = c.display + " " + key + " in " + m.config().name;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (!leading()) co_return;  // lost the Lease mid-pass: write nothing more
    const Objects& objects = m.objects(c.kind);
    auto it = objects.find(key);
    error_code ec;
    discovery::ApiResponse resp;
    std::string verb;
    if (it == objects.end()) {
      verb = "create";
      json body = desired;
      if (c.status) body.erase("status");  // a subresource: written below
      resp = co_await conn.request(http::verb::post, c.path(ns), body.dump(), max_body, ec);
    } else {
      const json& existing = it->second;
      const std::string conflict_key = c.display + " " + m.config().name + " " + key;
      if (!is_managed(existing)) {
        ++stats_.ownership_conflicts;
        if (reported_conflicts_.insert(conflict_key).second)
          log::warn("sync: " + what + " is not managed by sluice-sync (no " + managed_by_label + ": " +
                    managed_by_value + " label); left untouched");
        co_return;
      }
      reported_conflicts_.erase(conflict_key);
      if (managed_matches(existing, desired, c.fields)) co_return;  // nothing changed: nothing written
      json body = existing;
      bool fields_same = true;
      for (const auto& f : c.fields) {
        if (!existing.contains(f) || existing[f] != desired[f]) fields_same = false;
        body[f] = desired[f];
      }
      for (auto l = desired["metadata"]["labels"].begin(); l != desired["metadata"]["labels"].end(); ++l) {
        if (!body["metadata"].contains("labels") || !body["metadata"]["labels"].is_object() ||
            body["metadata"]["labels"].value(l.key(), "") != l.value())
          fields_same = false;
        body["metadata"]["labels"][l.key()] = l.value();
      }
      if (fields_same && c.status) {
        verb = "update_status";
        body["status"] = desired["status"];
        resp = co_await conn.request(http::verb::put, c.path(ns) + "/" + name + "/status", body.dump(), max_body, ec);
      } else {
        verb = "update";
        if (c.status) body["status"] = desired["status"];  // ignored by a server with the subresource
        resp = co_await conn.request(http::verb::put, c.path(ns) + "/" + name, body.dump(), max_body, ec);
      }
    }
    if (!ec && (resp.status == 200 || resp.status == 201)) {
      ++stats_.writes[verb];
      json written = json::parse(resp.body, nullptr, false);
      if (written.is_object()) m.remember(c.kind, key, &written);
      log::info("sync: " + verb + " " + what);
      continue;  // the status (or the fields) may still differ: the loop compares again
    }
    if (!ec && resp.status == 409) {
      // Someone wrote in between (or it exists already): read it again and decide anew.
      ++stats_.write_conflicts;
      error_code gec;
      auto fresh = co_await conn.get(c.path(ns) + "/" + name, max_body, gec);
      json object = json::parse(fresh.body, nullptr, false);
      if (!gec && fresh.status == 200 && object.is_object()) m.remember(c.kind, key, &object);
      else if (!gec && fresh.status == 404) m.remember(c.kind, key, nullptr);
      continue;
    }
    if (!ec && resp.status == 404 && verb != "create") {
      m.remember(c.kind, key, nullptr);  // deleted meanwhile: create it
      continue;
    }
    ++stats_.write_failures;
    log::warn("sync: " + verb + " " + what + ": " + describe_failure(resp.status, resp.body, ec, conn) + " (retried)");
    schedule_retry(key);
    co_return;
  }
}

net::awaitable<void> Controller::delete_managed(Member& m, const Collection& c, const std::string& key) {
  const auto [ns, name] = split_key(key);
  auto& conn = m.writer();
  auto it = m.objects(c.kind).find(key);
  if (it == m.objects(c.kind).end() || !leading()) co_return;
  // The precondition makes the delete apply to the version we judged, not to one changed meanwhile.
  json options = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"},
                  {"preconditions", {{"resourceVersion", it->second["metadata"].value("resourceVersion", "")}}}};
  error_code ec;
  auto resp = co_await conn.request(http::verb::delete_, c.path(ns) + "/" + name, options.dump(), max_body, ec);
  const std::string what = c.display + " " + key + " in " + m.config().name;
  if (!ec && (resp.status == 200 || resp.status == 202 || resp.status == 404)) {
    if (resp.status != 404) ++stats_.writes["delete"];
    m.remember(c.kind, key, nullptr);
    log::info("sync: delete " + what + " (no export left)");
    co_return;
  }
  if (!ec && resp.status == 409) ++stats_.write_conflicts;
  else ++stats_.write_failures;
  log::warn("sync: delete " + what + ": " + describe_failure(resp.status, resp.body, ec, conn) + " (retried)");
  schedule_retry(key);
}

net::awaitable<void> Controller::reconcile_mcs(Member& m, const std::string& key, const Resolution& r,
                                               const std::vector<Member*>& exporters, bool gc_allowed) {
  const auto [ns, name] = split_key(key);
  const Objects& imports = m.objects(Kind::mcs_service_import);
  if (r.merged) {
    co_await write_managed(m, mcs_imports(), key, mcs_import_object(*r.merged, ns, name));
  } else if (auto it = imports.find(key); it != imports.end() && is_managed(it->second)) {
    if (gc_allowed) co_await delete_managed(m, mcs_imports(), key);
    else ++stats_.gc_deferred;
  }
  // One slice per remote cluster that contributes to the merged import.
  std::set<std::string> wanted;
  if (r.merged) {
    for (const ClusterStatus& cs : r.merged->clusters) {
      if (cs.cluster == m.config().name) continue;
      Member* source = nullptr;
      for (Member* e : exporters)
        if (e->config().name == cs.cluster) source = e;
      if (!source) continue;
      std::vector<const json*> local;
      for (const auto& [skey, slice] : source->slices())
        if (skey.starts_with(ns + "/") && label_of(slice, "kubernetes.io/service-name") == name &&
            !is_managed(slice))
          local.push_back(&slice);
      const std::string slice_key = ns + "/" + mcs_slice_name(name, cs.cluster);
      wanted.insert(slice_key);
      co_await write_managed(m, mcs_slices(), slice_key, mcs_slice_object(*r.merged, ns, name, cs.cluster, local));
    }
  }
  std::vector<std::string> stale;
  for (const auto& [skey, slice] : m.slices())
    if (skey.starts_with(ns + "/") && is_managed(slice) && label_of(slice, mcs_service_label) == name &&
        !wanted.count(skey))
      stale.push_back(skey);
  for (const auto& skey : stale) {
    if (gc_allowed) co_await delete_managed(m, mcs_slices(), skey);
    else ++stats_.gc_deferred;
  }
}

net::awaitable<void> Controller::write_export_status(Member& m, const std::string& key, const ExportVerdict& verdict) {
  const auto [ns, name] = split_key(key);
  auto& conn = m.writer();
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (!leading()) co_return;
    auto it = m.exports().find(key);
    if (it == m.exports().end()) co_return;
    const json& existing = it->second;
    static const json none = json::array();
    const json& current = existing.contains("status") && existing["status"].is_object() &&
                                  existing["status"].contains("conditions")
                              ? existing["status"]["conditions"]
                              : none;
    json desired = export_conditions(verdict, current, now_rfc3339());
    if (!conditions_differ(current, desired)) co_return;
    json body = existing;
    if (!body.contains("status") || !body["status"].is_object()) body["status"] = json::object();
    body["status"]["conditions"] = desired;
    error_code ec;
    auto resp = co_await conn.request(http::verb::put, exports_path(ns) + "/" + name + "/status", body.dump(),
                                      max_body, ec);
    if (!ec && resp.status == 200) {
      ++stats_.writes["update_status"];
      json written = json::parse(resp.body, nullptr, false);
      if (written.is_object()) m.remember(Kind::service_export, key, &written);
      log::info("sync: status of ServiceExport " + key + " in " + m.config().name + ": " +
                (verdict.valid ? verdict.conflict_reason : verdict.valid_reason));
      co_return;
    }
    if (!ec && resp.status == 409) {
      ++stats_.write_conflicts;
      error_code gec;
      auto fresh = co_await conn.get(exports_path(ns) + "/" + name, max_body, gec);
      json object = json::parse(fresh.body, nullptr, false);
      if (!gec && fresh.status == 200 && object.is_object()) m.remember(Kind::service_export, key, &object);
      else if (!gec && fresh.status == 404) co_return;  // the export is gone
      continue;
    }
    if (!ec && resp.status == 404) co_return;
    ++stats_.write_failures;
    log::warn("sync: status of ServiceExport " + key + " in " + m.config().name + ": " +
              describe_failure(resp.status, resp.body, ec, conn) + " (retried)");
    schedule_retry(key);
    co_return;
  }
}

}  // namespace sluice::sync
