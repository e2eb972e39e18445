// proxy/h2_options.hpp: what sluice's nghttp2 options do to a real session. A client session and a server
// session exchange frames in memory (nghttp2_session_mem_send / mem_recv); no sockets.
#include "proxy/h2_options.hpp"

#include <catch2/catch.hpp>

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>

#include "proxy/h2_headers.hpp"

using sluice::proxy::new_h2_client_options;
using sluice::proxy::new_h2_server_options;

namespace {

using SessionPtr = std::unique_ptr<nghttp2_session, decltype(&nghttp2_session_del)>;
using OptionPtr = std::unique_ptr<nghttp2_option, decltype(&nghttp2_option_del)>;

// A server that answers every request at once with a 204 that ends the stream.
int answer(nghttp2_session* session, const nghttp2_frame* frame, void*) {
  if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    sluice::proxy::H2NvList head;
    head.add(":status", "204");
    nghttp2_submit_response(session, frame->hd.stream_id, head.nva.data(), head.nva.size(), nullptr);
  }
  return 0;
}

SessionPtr make_server(nghttp2_option* options) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &answer);
  nghttp2_session* s = nullptr;
  REQUIRE(nghttp2_session_server_new2(&s, cb, nullptr, options) == 0);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1024}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, settings, 1);
  return {s, &nghttp2_session_del};
}

SessionPtr make_client(nghttp2_option* options) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session* s = nullptr;
  REQUIRE(nghttp2_session_client_new2(&s, cb, nullptr, options) == 0);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
  return {s, &nghttp2_session_del};
}

// Moves every pending frame from `from` to `to`; returns the bytes moved.
std::size_t pump(nghttp2_session* from, nghttp2_session* to) {
  std::size_t moved = 0;
  const std::uint8_t* data = nullptr;
  for (auto n = nghttp2_session_mem_send(from, &data); n > 0; n = nghttp2_session_mem_send(from, &data)) {
    REQUIRE(nghttp2_session_mem_recv(to, data, static_cast<std::size_t>(n)) == n);
    moved += static_cast<std::size_t>(n);
  }
  return moved;
}

// Runs `requests` GETs, one after another, from `client` to `server`; returns the last stream id.
std::int32_t run_requests(nghttp2_session* client, nghttp2_session* server, int requests) {
  sluice::proxy::H2NvList head;
  head.add(":method", "GET");
  head.add(":scheme", "http");
  head.add(":authority", "a.test");
  head.add(":path", "/");
  std::int32_t id = 0;
  for (int i = 0; i < requests; ++i) {
    id = nghttp2_submit_request(client, nullptr, head.nva.data(), head.nva.size(), nullptr, nullptr);
    REQUIRE(id > 0);
    while (pump(client, server) + pump(server, client) > 0) {
    }
    REQUIRE(nghttp2_session_find_stream(client, id) == nullptr);  // answered and closed on the client's side
  }
  return id;
}

}  // namespace

TEST_CASE("h2 server options: a closed stream is not kept for RFC 7540's priority tree", "[proxy][h2]") {
  OptionPtr server_options(new_h2_server_options(), &nghttp2_option_del);
  OptionPtr client_options(new_h2_client_options(), &nghttp2_option_del);
  auto server = make_server(server_options.get());
  auto client = make_client(client_options.get());
  const auto last = run_requests(client.get(), server.get(), 50);
  CHECK(nghttp2_session_find_stream(server.get(), last) == nullptr);
  CHECK(nghttp2_session_find_stream(server.get(), 1) == nullptr);
  CHECK(nghttp2_session_get_last_proc_stream_id(server.get()) == last);
}

TEST_CASE("h2 server options: without them nghttp2 keeps closed streams (the case the option is for)",
          "[proxy][h2]") {
  // The control: nghttp2's default keeps up to MAX_CONCURRENT_STREAMS closed streams, so the test above
  // would fail if new_h2_server_options() stopped setting no_closed_streams.
  OptionPtr client_options(new_h2_client_options(), &nghttp2_option_del);
  auto server = make_server(nullptr);
  auto client = make_client(client_options.get());
  const auto last = run_requests(client.get(), server.get(), 50);
  CHECK(nghttp2_session_find_stream(server.get(), last) != nullptr);
  CHECK(nghttp2_session_find_stream(server.get(), 1) != nullptr);
}
