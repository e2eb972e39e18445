"""The container image (packaging/image.sh): built from the test build's binary, unpacked with umoci, run
inside its own root filesystem (chroot, as the image's non-root user): `sluice --version` and
`sluice --check` must work with nothing but what the image holds; the manifests must name the image."""
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SLUICE_BUILD_DIR", ROOT / "build"))
BINARY = BUILD / "cli" / "sluice"
MAX_IMAGE_BYTES = 25 * 1024 * 1024


@functools.cache
def sanitized():
    """A sanitizer build's binary (CI's full run): it packages the same way, but its image holds the sanitizer
    runtimes (no size bound then) and needs /proc to run."""
    return "libasan" in subprocess.run(["ldd", str(BINARY)], capture_output=True, text=True).stdout


def version():
    return re.search(r"^  version : '([^']+)',$", (ROOT / "meson.build").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if os.geteuid() != 0 or shutil.which("umoci") is None:
        pytest.skip("needs root and umoci (tests/install-deps.sh installs it)")
    out = tmp_path_factory.mktemp("image")
    done = subprocess.run(["bash", str(ROOT / "packaging" / "image.sh"), "--binary", str(BINARY), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = out / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{out}/oci:{version()}", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    return {"out": out, "bundle": bundle, "rootfs": bundle / "rootfs", "log": done.stdout}


def in_image(image, *args):
    user = json.loads((image["bundle"] / "config.json").read_text())["process"]["user"]
    argv = ["chroot", f"--userspec={user['uid']}:{user['gid']}", str(image["rootfs"]), *args]
    if not sanitized():
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    # The sanitizer runtime reads its options and threads from /proc: mount one for the run, as a container
    # runtime does (the image itself holds none).
    proc = image["rootfs"] / "proc"
    proc.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "proc", "proc", str(proc)], capture_output=True).returncode != 0:
        proc.rmdir()
        pytest.skip("a sanitizer build needs /proc in the image's root, and mounting one is not allowed here")
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run(["umount", str(proc)], capture_output=True)
        proc.rmdir()


def test_image_runs_version_and_check_inside_its_own_root(image):
    ran = in_image(image, "/usr/local/bin/sluice", "--version")
    assert ran.returncode == 0 and ran.stdout.strip() == f"sluice {version()}", ran.stderr
    config = image["rootfs"] / "etc" / "sluice"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "sluice.json", config / "sluice.json")
    checked = in_image(image, "/usr/local/bin/sluice", "--config", "/etc/sluice/sluice.json", "--check")
    assert checked.returncode == 0 and "config OK" in checked.stdout, checked.stdout + checked.stderr
    (config / "bad.json").write_text('{"listeners": [{"port": "eighty"}]}')
    bad = in_image(image, "/usr/local/bin/sluice", "--config", "/etc/sluice/bad.json", "--check")
    assert bad.returncode != 0 and "listeners[0].port" in (bad.stdout + bad.stderr)


def test_image_is_small_non_root_and_holds_only_the_binary_and_its_libraries(image):
    config = json.loads((image["bundle"] / "config.json").read_text())
    assert config["process"]["user"]["uid"] != 0
    assert config["process"]["args"][0] == "/usr/local/bin/sluice"
    blobs = sum(p.stat().st_size for p in (image["out"] / "oci" / "blobs").rglob("*") if p.is_file())
    if not sanitized():
        assert blobs < MAX_IMAGE_BYTES, f"image is {blobs} bytes"
    files = {str(p.relative_to(image["rootfs"])) for p in image["rootfs"].rglob("*") if p.is_file()}
    files = {f for f in files if not f.startswith("etc/sluice/")}  # what the test above put in
    libraries = {f for f in files if ".so" in f}
    assert "usr/local/bin/sluice" in files
    # Each shared library the binary loads is in the image (a static_deps build loads libc and libm only;
    # a sanitized or dynamic one libssl, libstdc++ and the rest too).
    needed = re.findall(r"^\s*(\S+\.so[.\d]*) =>", subprocess.run(["ldd", str(BINARY)], capture_output=True,
                                                                 text=True, check=True).stdout, re.M)
    assert any(n.startswith("libc.so") for n in needed), needed
    for name in needed:
        assert any(pathlib.PurePath(f).name == name for f in libraries), f"{name} is not in the image: {libraries}"
    assert files - libraries == {"usr/local/bin/sluice", "etc/passwd", "etc/group", "etc/nsswitch.conf"}, files
    assert (image["out"] / f"sluice-{version()}.tar").stat().st_size > 0, "the docker-archive is missing"


def test_manifests_name_the_image_this_script_builds():
    for manifest in ("gateway.yaml", "sidecar.yaml"):
        text = (ROOT / "examples" / "kubernetes" / manifest).read_text()
        assert f"image: sluice:{version()}" in text, f"{manifest} does not run sluice:{version()}"
