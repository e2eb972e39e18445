// WebSocketFrames (proxy/tunnel.hpp): follows frame boundaries through a relayed byte stream, so that a
// tunnel knows when it may put a close frame of its own between two frames. Checked against frames built
// here (RFC 6455 section 5.2: 7-bit, 16-bit and 64-bit lengths, masked or not), fed whole, in one chunk
// with several frames, and cut at every byte.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy/tunnel.hpp"

using sluice::proxy::WebSocketFrames;

namespace {

std::string frame(std::uint64_t payload, bool masked) {
  std::string f;
  f += static_cast<char>(0x82);  // FIN, binary
  const char mask_bit = masked ? static_cast<char>(0x80) : 0;
  if (payload < 126) {
    f += static_cast<char>(mask_bit | static_cast<char>(payload));
  } else if (payload <= 0xffff) {
    f += static_cast<char>(mask_bit | 126);
    for (int shift = 8; shift >= 0; shift -= 8) f += static_cast<char>((payload >> shift) & 0xff);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((payload >> shift) & 0xff);
  }
  if (masked) f += std::string("\x01\x02\x03\x04", 4);
  f += std::string(payload, 'x');
  return f;
}

void feed(WebSocketFrames& frames, const std::string& bytes) {
  frames.pass(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

}  // namespace

TEST_CASE("websocket frames: between frames after each whole frame, whatever its length form") {
  for (std::uint64_t payload : {0ull, 1ull, 64ull, 125ull, 126ull, 1000ull, 65535ull, 65536ull, 70000ull}) {
    for (bool masked : {false, true}) {
      WebSocketFrames frames;
      const auto f = frame(payload, masked);
      feed(frames, f.substr(0, f.size() - 1));
      CHECK_FALSE(frames.between_frames());
      feed(frames, f.substr(f.size() - 1));
      CHECK(frames.between_frames());
    }
  }
}

TEST_CASE("websocket frames: several frames in one chunk, and the chunk cut at every byte") {
  const std::string stream = frame(64, true) + frame(0, false) + frame(300, true) + frame(70000, false) +
                             frame(5, true);
  // Where each frame ends in the stream: between_frames() must hold there and nowhere else.
  std::vector<std::size_t> ends;
  std::size_t at = 0;
  for (auto [payload, masked] : std::vector<std::pair<std::uint64_t, bool>>{
           {64, true}, {0, false}, {300, true}, {70000, false}, {5, true}}) {
    at += frame(payload, masked).size();
    ends.push_back(at);
  }
  {
    WebSocketFrames frames;
    feed(frames, stream);
    CHECK(frames.between_frames());
  }
  for (std::size_t cut = 1; cut < stream.size(); cut += (cut < 600 ? 1 : 997)) {
    WebSocketFrames frames;
    feed(frames, stream.substr(0, cut));
    const bool at_end = std::find(ends.begin(), ends.end(), cut) != ends.end();
    INFO("cut at " << cut);
    CHECK(frames.between_frames() == at_end);
    feed(frames, stream.substr(cut));
    CHECK(frames.between_frames());
  }
}

TEST_CASE("websocket frames: a header trickled a byte at a time") {
  const auto f = frame(70000, true) + frame(3, false);
  WebSocketFrames frames;
  for (char c : f) {
    feed(frames, std::string(1, c));
  }
  CHECK(frames.between_frames());
}
