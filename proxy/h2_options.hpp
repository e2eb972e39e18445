// The nghttp2 options of sluice's HTTP/2 sessions, downstream (server) and upstream (client), in one place so
// that tests/proxy/h2_options_test.cpp can check what they do to a real nghttp2 session.
#pragma once

struct nghttp2_option;

namespace sluice::proxy {

// A new option set for a downstream connection's server session; the caller frees it (nghttp2_option_del).
nghttp2_option* new_h2_server_options();

// A new option set for an upstream connection's client session; the caller frees it (nghttp2_option_del).
nghttp2_option* new_h2_client_options();

}  // namespace sluice::proxy
