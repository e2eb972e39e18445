// nghttp2's allocations through the worker's recycler (proxy/recycler.hpp).
//
// Why: an HTTP/2 stream costs libnghttp2 about a dozen malloc/free pairs of its own per session it crosses
// (the stream object, its header block, the outbound frame items, the HPACK name/value buffers); a proxied
// stream crosses two (downstream and upstream). nghttp2_session_*_new3 takes an allocator, and the
// recycler hands back the same few size classes from a thread-local free list.
//
// nghttp2's free() gets no size, so each block carries its size in a 16-byte header (the alignment the
// recycler gives, kept for the caller). Blocks over the recycler's largest class (HPACK tables, the
// session's buffers, made once per connection) go to the heap as before.
//
// Thread: the thread that runs the session (a worker; the recycler accepts a block freed on another
// thread too).
#pragma once

#include <nghttp2/nghttp2.h>

namespace sluice::proxy {

// The allocator to pass to nghttp2_session_server_new3 / client_new3 (nghttp2 copies it).
nghttp2_mem* h2_recycling_mem();

}  // namespace sluice::proxy
