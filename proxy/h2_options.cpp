#include "proxy/h2_options.hpp"

#include <cstddef>
#include <cstdint>

#include <nghttp2/nghttp2.h>

namespace sluice::proxy {
namespace {

// Flood limits (nghttp2's defaults, set explicitly so they are ours): RST_STREAM rate (CVE-2023-44487
// "rapid reset": 1000 burst, 33/s refill), CONTINUATION frames per header block, queued SETTINGS/PING acks,
// SETTINGS entries. Beyond them nghttp2 sends GOAWAY and the connection is closed.
constexpr std::uint64_t kResetBurst = 1000;
constexpr std::uint64_t kResetRate = 33;
constexpr std::size_t kMaxContinuations = 8;
constexpr std::size_t kMaxOutboundAck = 1000;
constexpr std::size_t kMaxSettings = 32;

}  // namespace

nghttp2_option* new_h2_server_options() {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Bytes are acknowledged once they have been written on (flow control tied to consumption).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // A server session otherwise keeps up to MAX_CONCURRENT_STREAMS closed streams per connection for RFC
  // 7540's priority tree, which a proxy does not use: with our 1024, about 190 KiB of dead streams on every
  // busy connection, and a stream map ten times the size of the live one, each new stream evicting the
  // oldest (nghttp2_map_find was the top symbol of an h2 profile). Envoy sets the same option for the memory.
  // (Not SETTINGS_NO_RFC7540_PRIORITIES, which nghttpx's frontend sends: with it nghttp2 stops checking RFC
  // 7540 priority signals, and a PRIORITY frame depending on its own stream goes unanswered instead of getting
  // RST_STREAM PROTOCOL_ERROR, a case of tests/proxy/test_h2_conformance.py.)
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, kResetBurst, kResetRate);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  nghttp2_option_set_max_outbound_ack(opt, kMaxOutboundAck);
  nghttp2_option_set_max_settings(opt, kMaxSettings);
  return opt;
}

nghttp2_option* new_h2_client_options() {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // A client session keeps no closed streams anyway; set so that this never depends on nghttp2's default.
  nghttp2_option_set_no_closed_streams(opt, 1);
  return opt;
}

}  // namespace sluice::proxy
