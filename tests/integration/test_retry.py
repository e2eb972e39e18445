"""Retry on a reset before any response byte: for idempotent methods on another endpoint, never for POST.

/reset resets on every backend, so one endpoint is a Python server that reads a request head and resets
the connection, the other a normal backend."""
from integ_harness import curl_status


def short_timeouts():
    return {"request_header": "2s", "idle": "60s", "connect": "1s", "response": "2s", "drain": "5s"}


def test_reset_before_response_retried_for_get(backend_factory, sluice_factory, raw_server_factory):
    a = backend_factory("alpha")
    resetter = raw_server_factory("reset")
    sluice = sluice_factory([resetter.address, a.address], timeouts=short_timeouts())
    hit_resetter = 0
    for _ in range(6):
        before = len(resetter.heads)
        status, body = curl_status(sluice.url("/"))
        assert status == 200, body
        assert body == b"alpha\n"
        hit_resetter += len(resetter.heads) > before
    assert hit_resetter >= 2, "the resetting endpoint was never tried: the test proves nothing"


def test_reset_retried_for_put_with_small_body(backend_factory, sluice_factory, raw_server_factory):
    # PUT is idempotent and its small body is in hand, so it can be replayed.
    a = backend_factory("alpha")
    resetter = raw_server_factory("reset")
    sluice = sluice_factory([resetter.address, a.address], timeouts=short_timeouts())
    hit_resetter = 0
    for _ in range(4):
        before = len(resetter.heads)
        status, body = curl_status(sluice.url("/sink"), "-X", "PUT", "--data-binary", "0123456789")
        assert status == 200, body
        assert body == b"10\n"
        hit_resetter += len(resetter.heads) > before
    assert hit_resetter >= 1


def test_reset_not_retried_for_post(backend_factory, sluice_factory, raw_server_factory):
    a = backend_factory("alpha")
    resetter = raw_server_factory("reset")
    sluice = sluice_factory([resetter.address, a.address], timeouts=short_timeouts())
    outcomes = []
    for _ in range(6):
        before_reset = len(resetter.heads)
        status, body = curl_status(sluice.url("/sink"), "--data-binary", "payload")
        hit = len(resetter.heads) > before_reset
        outcomes.append((hit, status))
        if hit:
            assert status == 502, body
            assert body.strip(), "a 502 needs a body naming the cause"
        else:
            assert status == 200 and body == b"7\n"
    assert any(hit for hit, _ in outcomes), outcomes
    assert any(not hit for hit, _ in outcomes), outcomes


def test_post_to_resetting_endpoint_only(sluice_factory, raw_server_factory):
    resetter = raw_server_factory("reset")
    sluice = sluice_factory([resetter.address], timeouts=short_timeouts())
    status, body = curl_status(sluice.url("/sink"), "--data-binary", "payload")
    assert status == 502
    assert len(resetter.heads) == 1
    assert resetter.heads[0].startswith(b"POST /sink HTTP/1.1")
