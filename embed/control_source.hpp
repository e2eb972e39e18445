// What a built-in discovery source adds to sluice::Source inside a Proxy (private to libsluice): it runs
// on the proxy's control thread, merges the config's static routing under its own, holds the workers
// until its first sync, and reports to the admin endpoint. The "kubernetes" source is one. A Source says
// it is one by returning this side from Source::control_side(), which the Proxy reads through
// SourceAccess.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "routing/model.hpp"
#include "sluice/sluice.hpp"

namespace boost::asio { class io_context; }
namespace sluice::prometheus { class Writer; }

namespace sluice {

class ControlSource {
 public:
  virtual ~ControlSource() = default;

  // Before Source::start(): the proxy's control io_context. From then on start() runs on the thread that
  // starts the proxy (before the control thread runs) and everything else on the control thread,
  // stop() included.
  virtual void attach(boost::asio::io_context& control) = 0;
  // The config's static routing, merged under every model the source publishes (republished when
  // started). Before start() or on the control thread.
  virtual void set_base(routing::Model base) = 0;
  // Whether the first full sync is done (true when not running: nothing to wait for). Control thread.
  virtual bool synced() const = 0;
  // Writes the source's metric families. Control thread.
  virtual void render_metrics(prometheus::Writer& out) const = 0;
  // Adds the source's status to /routes and /explain answers. Control thread.
  virtual void add_status(nlohmann::json& status) const = 0;
};

// The Proxy's way to Source::control_side() (private in the public header: programs have no use for it).
struct SourceAccess {
  // The source's control-thread side; null for a program's own source.
  static ControlSource* control_side(Source& source) { return source.control_side(); }
};

}  // namespace sluice
