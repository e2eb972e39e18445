"""Access log: one JSON line per request when enabled, none when disabled."""
from integ_harness import curl, curl_status, json_lines, make_config, wait_json_lines

FIELDS = ("method", "authority", "path", "status", "upstream", "duration_ms")


def test_access_log_to_stdout(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], access_log={"enabled": True, "path": "-"})
    status, body = curl_status(sluice.url("/bytes/1234?x=1"), "-H", "Host: shop.example")
    assert status == 200 and len(body) == 1234
    status, _ = curl_status(sluice.url("/sink"), "--data-binary", "0123456789", "-H", "Host: shop.example")
    assert status == 200
    lines = wait_json_lines(sluice.stdout, 2)
    assert len(lines) == 2, sluice.stdout()
    get, post = lines
    for line in lines:
        for f in FIELDS:
            assert f in line, (f, line)
        assert line["upstream"] == a.address
        assert line["authority"] == "shop.example"
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert get["method"] == "GET"
    assert get["path"] == "/bytes/1234?x=1"
    assert get["bytes_sent"] == 1234
    assert post["method"] == "POST"
    assert post["path"] == "/sink"
    assert post["bytes_received"] == 10
    assert get["attempts"] == 1 and post["attempts"] == 1


def test_access_log_counts_streamed_upload(backend_factory, sluice_factory):
    # A body larger than one relay piece: bytes_received must count all of it.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], access_log={"enabled": True, "path": "-"})
    size = 1024 * 1024 + 5
    r = curl("--data-binary", "@-", "-o", "-", sluice.url("/sink"), input_data=b"z" * size)
    assert r.stdout.strip() == str(size).encode()
    lines = wait_json_lines(sluice.stdout, 1)
    assert lines and lines[0]["bytes_received"] == size, lines


def test_access_log_errors_and_file(backend_factory, sluice_factory, tmp_path):
    a = backend_factory("alpha")
    path = tmp_path / "access.log"
    sluice = sluice_factory([a.address], access_log={"enabled": True, "path": str(path)})
    status, _ = curl_status(sluice.url("/status/503"))
    assert status in (502, 503)
    lines = wait_json_lines(lambda: path.read_text() if path.exists() else "", 1)
    assert len(lines) == 1
    assert lines[0]["path"] == "/status/503"
    assert lines[0]["status"] == status
    assert json_lines(sluice.stdout()) == []


def test_access_log_disabled(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    # Two requests on one connection: the session logs a request before it reads the next one, so once the
    # second answer is in, the first request's line would have been written.
    r = curl("-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} ", sluice.url("/"), sluice.url("/"))
    assert r.stdout == b"200 200 ", r.stderr
    assert json_lines(sluice.stdout()) == []


def test_access_log_duration_and_local_answers(backend_factory, sluice_factory):
    a = backend_factory("alpha")

    def cfg(port):
        c = make_config(port, [a.address], access_log={"enabled": True, "path": "-"})
        c["routes"] = [{"hosts": ["app"], "path": "/", "service": "app.default"}]
        return c
    sluice = sluice_factory(make_cfg=cfg)
    status, _ = curl_status(sluice.url("/delay/300"), "-H", "Host: app")
    assert status == 200
    status, _ = curl_status(sluice.url("/nowhere"), "-H", "Host: other")
    assert status == 404
    lines = wait_json_lines(sluice.stdout, 2)
    assert len(lines) == 2, sluice.stdout()
    delayed, missing = lines
    assert 290 <= delayed["duration_ms"] < 3000, delayed
    assert missing["status"] == 404 and missing["path"] == "/nowhere" and missing["authority"] == "other"
    assert missing["upstream"] == ""


def test_access_log_no_endpoint_names_the_service(sluice_factory):
    # A service with no endpoint: the 503 the proxy answers itself still says which service it was for.
    sluice = sluice_factory([], access_log={"enabled": True, "path": "-"})
    status, body = curl_status(sluice.url("/x"))
    assert status == 503, body
    lines = wait_json_lines(sluice.stdout, 1)
    assert len(lines) == 1, sluice.stdout()
    assert lines[0]["status"] == 503 and lines[0]["service"] == "app.default", lines[0]
    assert lines[0]["upstream"] == "" and lines[0]["src_cluster"], lines[0]
