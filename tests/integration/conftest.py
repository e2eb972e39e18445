"""Fixtures for the integration tests of the real sluice binary (see integ_harness.py)."""
import pytest

from integ_harness import (BACKEND, BUILD_DIR, SLUICE, Backend, BlackHole, ProcessGroup, RawServer, make_config,
                           start_sluice)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes its time by nature (100 MiB bodies, an install, a deadline of "
                                       "seconds); left out of the fast tier (tests/run_all.py --fast)")


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    if not SLUICE.is_file() or not BACKEND.is_file():
        pytest.fail(f"build {SLUICE} and {BACKEND} first (build dir {BUILD_DIR}; set SLUICE_BUILD_DIR), e.g. "
                    f"ninja -C {BUILD_DIR} cli/sluice tests/backend/sluice-testbackend")


@pytest.fixture
def procs():
    group = ProcessGroup()
    yield group
    group.kill_all()


@pytest.fixture
def backend_factory(procs, tmp_path):
    """backend_factory(name, *extra_args) -> a running Backend."""
    def make(name, *extra_args):
        return Backend(procs, tmp_path, name, extra_args)
    return make


@pytest.fixture
def sluice_factory(procs, tmp_path):
    """sluice_factory(endpoints, args=(), **config_overrides) -> a running Sluice on a free port.
    endpoints: addresses "127.0.0.1:PORT"; or pass make_cfg=callable(port) for a whole config."""
    def make(endpoints=(), args=(), make_cfg=None, preexec_fn=None, **overrides):
        if make_cfg is None:
            def make_cfg(port):
                return make_config(port, endpoints, **dict(overrides))
        return start_sluice(procs, tmp_path, make_cfg, args, preexec_fn=preexec_fn)
    return make


@pytest.fixture
def raw_server_factory():
    servers = []

    def make(mode, response=b""):
        s = RawServer(mode, response)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()
