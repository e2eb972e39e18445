"""libsluice as installed: `meson install` into a temporary prefix, examples/embedded built with g++ and
`pkg-config --cflags --libs sluice`, run against two local backends. Its custom load-balancing plugin
("lowest-latency") must decide: after one try of each endpoint, the fast one gets every request, where
the built-in round robin would split them evenly."""
import http.client
import os
import pathlib
import select
import shutil
import subprocess
import time

import pytest

from integ_harness import BUILD_DIR, REPO, SANITIZED, clean_env, free_port

REQUESTS = 12
SLOW_MS = 150

PUBLIC_HEADERS = sorted([
    "sluice/sluice.hpp", "sluice/asio.hpp",
    "routing/model.hpp", "routing/plugins.hpp", "routing/endpoint_state.hpp", "routing/clock.hpp",
    "routing/rng.hpp",
    "config/config.hpp",
    "log/logger.hpp",
])

# The install test: meson install and a compile against the installed headers take their time (not in
# the fast tier, tests/run_all.py --fast).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(pkg-config environment, cflags+libs) of libsluice installed under a temporary destdir."""
    if not (BUILD_DIR / "embed" / "libsluice.a").is_file():
        pytest.fail(f"build libsluice first: ninja -C {BUILD_DIR}")
    dest = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["meson", "install", "-C", str(BUILD_DIR), "--no-rebuild", "--quiet", "--destdir", str(dest)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    pcs = list(dest.rglob("pkgconfig/sluice.pc"))
    assert len(pcs) == 1, pcs
    # The sysroot maps the configured prefix's -I and -L paths into the destdir.
    env = dict(clean_env(), PKG_CONFIG_PATH=str(pcs[0].parent), PKG_CONFIG_SYSROOT_DIR=str(dest))
    r = subprocess.run(["pkg-config", "--cflags", "--libs", "sluice"], env=env,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    flags = r.stdout.decode().split()
    assert "-lsluice" in flags
    assert any(f.startswith("-I") and f.startswith("-I" + str(dest)) for f in flags), flags
    # Both flavours and the public headers are installed.
    libdir = pathlib.Path(next(f[2:] for f in flags if f.startswith("-L")))
    assert (libdir / "libsluice.a").is_file() and list(libdir.glob("libsluice.so*"))
    incdir = pathlib.Path(next(f[2:] for f in flags if f.startswith("-I")))
    # The public surface and only it: the facade, the plugin interfaces and what they need, the model,
    # the config structs and the logger. No snapshot, registry or allocator internals.
    installed = sorted(str(h.relative_to(incdir)) for h in incdir.rglob("*") if h.is_file())
    assert installed == PUBLIC_HEADERS, installed
    # Internals stay private: no Asio/Beast in the installed headers, but for the one optional header
    # that takes a program's io_context.
    assert (incdir / "sluice" / "asio.hpp").is_file()
    for h in incdir.rglob("*.hpp"):
        if h != incdir / "sluice" / "asio.hpp":
            assert "boost" not in h.read_text(), h
    # A sanitized libsluice (CI's build-asan) needs the sanitizer runtimes loaded first in the program
    # that links it: the program is built with the same -fsanitize flags, as any user of it must be.
    if SANITIZED:
        flags = flags + ["-fsanitize=address,undefined"]
    return flags, libdir


def test_binary_builds_against_installed_library(installed, tmp_path):
    """The sluice binary is a user of the public API only: its source builds against the installed
    headers and library, and the result checks configs as the in-tree binary does."""
    flags, libdir = installed
    gxx = shutil.which("g++") or shutil.which("c++")
    out = tmp_path / "sluice"
    r = subprocess.run([gxx, "-O1", str(REPO / "cli" / "main.cpp"), *flags, f"-Wl,-rpath,{libdir}", "-o", str(out)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run([str(out), "--version"], capture_output=True, text=True, timeout=30, env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith("sluice ") and r.stdout.split()[1][0].isdigit(), r.stdout
    r = subprocess.run([str(out), "--check", "-c", str(REPO / "examples" / "sluice.json")], capture_output=True,
                       text=True, timeout=30, env=clean_env())
    assert (r.returncode, r.stdout) == (0, "config OK\n"), r.stderr


@pytest.fixture(scope="module")
def example(installed, tmp_path_factory):
    flags, libdir = installed
    gxx = shutil.which("g++") or shutil.which("c++")
    assert gxx, "no C++ compiler"
    out = tmp_path_factory.mktemp("example") / "embedded"
    r = subprocess.run([gxx, "-O1", str(REPO / "examples" / "embedded" / "main.cpp"), *flags,
                        f"-Wl,-rpath,{libdir}", "-o", str(out)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return out


# A program serving on its own io_context through the installed sluice/asio.hpp: the proxy's one worker
# runs on the thread that runs `ioc`. Prints "ready", serves until stdin ends, prints its request count.
ON_IO_CONTEXT = r"""
#include <iostream>
#include <thread>
#include <sluice/asio.hpp>

int main(int argc, char** argv) {
  const std::string config = std::string(R"({"workers": 4, "admin": {"enabled": false},
    "listeners": [{"name": "http", "port": )") + argv[1] + R"(}],
    "services": [{"name": "web", "clusters": [{"cluster": "default/default/default/local",
                  "endpoints": [{"address": "127.0.0.1", "port": )" + argv[2] + R"(}]}]}],
    "routes": [{"hosts": ["*"], "service": "web.default"}]})";
  std::vector<std::string> errors;
  boost::asio::io_context ioc;  // declared first: it must outlive the proxy (sluice/asio.hpp)
  auto proxy = sluice::Proxy::from_json(config, errors);
  if (proxy) errors = sluice::start_on(*proxy, ioc);
  for (const auto& e : errors) std::cerr << e << "\n";
  if (!errors.empty()) return 1;
  std::thread io([&ioc] {
    auto guard = boost::asio::make_work_guard(ioc);
    ioc.run();
  });
  std::cout << "ready" << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
  }
  proxy->stop();
  ioc.stop();
  io.join();
  std::cout << "requests " << proxy->stats().requests << std::endl;
}
"""


def read_line(proc, timeout):
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise AssertionError(f"no line from the example within {timeout}s (got {line!r})")
        ch = os.read(proc.stdout.fileno(), 1)
        if not ch:
            raise AssertionError(f"example exited: {line!r} {proc.stderr.read().decode()}")
        line += ch
    return line.decode().strip()


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def test_embedded_example_custom_policy_decides(example, backend_factory, procs):
    fast, slow = backend_factory("fast"), backend_factory("slow")
    port = free_port()
    proc = procs.add(subprocess.Popen([str(example), str(port), str(fast.port), str(slow.port), str(SLOW_MS)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=clean_env()))
    assert read_line(proc, 10) == "ready"
    answers = [get(port) for _ in range(REQUESTS)]
    assert all(status == 200 for status, _ in answers), answers
    served = [body for _, body in answers]
    # Each endpoint is measured once (the first two picks), then the fast one wins every time.
    assert sorted(served[:2]) == ["fast", "slow"], served
    assert served[2:] == ["fast"] * (REQUESTS - 2), served

    proc.stdin.close()
    summary = read_line(proc, 15)
    assert proc.wait(timeout=10) == 0
    fields = summary.split()
    stats = dict(zip(fields[0::2], map(int, fields[1::2])))
    assert stats["requests"] == REQUESTS and stats["2xx"] == REQUESTS, summary
    assert stats["routing_updates"] == 2, summary  # the config's model, then the program's own
    assert stats["plugin_picks"] == REQUESTS, summary


def test_installed_asio_header_serves_on_the_programs_io_context(installed, tmp_path, backend_factory, procs):
    flags, libdir = installed
    gxx = shutil.which("g++") or shutil.which("c++")
    src = tmp_path / "on_io_context.cpp"
    src.write_text(ON_IO_CONTEXT)
    out = tmp_path / "on_io_context"
    r = subprocess.run([gxx, "-O1", str(src), *flags, f"-Wl,-rpath,{libdir}", "-pthread", "-o", str(out)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    web = backend_factory("web")
    port = free_port()
    proc = procs.add(subprocess.Popen([str(out), str(port), str(web.port)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()))
    assert read_line(proc, 10) == "ready"
    assert [get(port) for _ in range(5)] == [(200, "web")] * 5
    proc.stdin.close()
    assert read_line(proc, 15) == "requests 5"
    assert proc.wait(timeout=10) == 0
