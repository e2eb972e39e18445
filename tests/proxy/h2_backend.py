"""A small HTTP/2 (h2c prior knowledge, or h2 over TLS with ALPN) test endpoint on python3-h2, one thread
per connection, flow control honoured both ways.

    /name            -> the server's name
    /bytes/N         -> N bytes (streamed as the window allows)
    /sink            -> (POST) the number of body bytes received
    /echo            -> (POST) the body back, after the request ended
    /trailers        -> "body" then trailers x-trailer: yes, x-count: 2
    /headers         -> the request's header fields, one "name: value" a line
    /request-trailers -> (POST) "body=N" (bytes received), "head=a,b" (the head's regular field names), then
                        the request's trailers, one "name: value" a line
    /goaway-if/NAME  -> on the server called NAME: GOAWAY (NO_ERROR, last stream id = this stream - 2, so
                        this stream was not processed) and the connection closed; elsewhere: the name

Usage: h2_backend.py NAME PORT_FILE [--tls CERT KEY] [--max-streams N] [--http1]

--http1 (with --tls): an HTTPS/1.1 server whose ALPN offers http/1.1 only, answering every GET with NAME.
"""
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def serve_connection(sock, name, max_streams):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.local_settings = h2.settings.Settings(client=False, initial_values={
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    conn.initiate_connection()
    conn.increment_flow_control_window(16 << 20)
    sock.sendall(conn.data_to_send())
    requests = {}   # stream id -> {"headers": dict, "body": bytearray, "count": int}
    pending = {}    # stream id -> [bytes left to send, trailers or None]
    lock = threading.Lock()

    def pump():
        for sid in list(pending):
            data, trailers = pending[sid]
            while data:
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                conn.send_data(sid, bytes(data[:window]))
                data = data[window:]
            pending[sid][0] = data
            if not data:
                if trailers:
                    conn.send_headers(sid, trailers, end_stream=True)
                else:
                    conn.send_data(sid, b"", end_stream=True)
                del pending[sid]

    def respond(sid, status, body, trailers=None, extra=()):
        headers = [(":status", str(status)), ("server", name)] + list(extra)
        if trailers is None:
            headers.append(("content-length", str(len(body))))
        conn.send_headers(sid, headers)
        pending[sid] = [memoryview(body), trailers]

    def handle(sid):
        r = requests.pop(sid)
        path = r["headers"].get(":path", "/")
        if path == "/name":
            respond(sid, 200, name.encode() + b"\n")
        elif path.startswith("/bytes/"):
            respond(sid, 200, b"x" * int(path[len("/bytes/"):]))
        elif path == "/sink":
            respond(sid, 200, str(r["count"]).encode())
        elif path == "/echo":
            respond(sid, 200, bytes(r["body"]))
        elif path == "/trailers":
            respond(sid, 200, b"body", trailers=[("x-trailer", "yes"), ("x-count", "2")])
        elif path == "/request-trailers":
            head = ",".join(k for k, _ in r["fields"] if not k.startswith(":"))
            text = f"body={r['count']}\nhead={head}\n" + "".join(f"{k}: {v}\n" for k, v in r["trailers"])
            respond(sid, 200, text.encode())
        elif path == "/headers":
            text = "".join(f"{k}: {v}\n" for k, v in r["fields"])
            respond(sid, 200, text.encode())
        elif path.startswith("/goaway-if/") and path[len("/goaway-if/"):] != name:
            respond(sid, 200, name.encode() + b"\n")
        elif path.startswith("/goaway-if/"):
            conn.close_connection(last_stream_id=max(0, sid - 2))
            sock.sendall(conn.data_to_send())
            raise ConnectionAbortedError
        else:
            respond(sid, 404, b"not found\n")

    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            with lock:
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        requests[ev.stream_id] = {"headers": dict(ev.headers), "fields": list(ev.headers),
                                                  "body": bytearray(), "count": 0, "trailers": []}
                        if ev.stream_ended:
                            handle(ev.stream_id)
                    elif isinstance(ev, h2.events.DataReceived):
                        r = requests.get(ev.stream_id)
                        if r is not None:
                            r["count"] += len(ev.data)
                            if r["headers"].get(":path") == "/echo":
                                r["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        r = requests.get(ev.stream_id)
                        if r is not None:
                            r["trailers"] = list(ev.headers)
                    elif isinstance(ev, h2.events.StreamEnded):
                        if ev.stream_id in requests:
                            handle(ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        requests.pop(ev.stream_id, None)
                        pending.pop(ev.stream_id, None)
                pump()
                sock.sendall(conn.data_to_send())
    except (OSError, ConnectionAbortedError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def serve_http1(name, port_file, tls):
    import http.server
    import os

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = name.encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def main():
    name, port_file = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    tls = None
    max_streams = 100
    http1 = False
    while args:
        if args[0] == "--tls":
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(args[1], args[2])
            tls.set_alpn_protocols(["h2"])
            args = args[3:]
        elif args[0] == "--http1":
            http1 = True
            args = args[1:]
        elif args[0] == "--max-streams":
            max_streams = int(args[1])
            args = args[2:]
        else:
            raise SystemExit(f"unknown argument {args[0]}")
    if http1:
        tls.set_alpn_protocols(["http/1.1"])
        serve_http1(name, port_file, tls)
        return
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            try:
                sock = tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                continue
        threading.Thread(target=serve_connection, args=(sock, name, max_streams), daemon=True).start()


if __name__ == "__main__":
    main()
