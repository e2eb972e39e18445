"""Throwaway PKI (openssl CLI) and the kubeconfig that points kubectl or sluice at the stand-in."""

import base64
import os
import subprocess

CA_SUBJECT = "/CN=sluice-standin-ca"
SERVER_SUBJECT = "/CN=kube-apiserver"
# O=system:masters is what a real cluster-admin client certificate carries.
CLIENT_SUBJECT = "/O=system:masters/CN=sluice-test-admin"
VALID_DAYS = "3650"

FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _signed(cwd, name, subject, extensions):
    """Key + certificate `name`.{key,crt} signed by ca.{crt,key} with the given v3 extensions."""
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", VALID_DAYS, "-sha256",
             "-extfile", f"{name}.ext", cwd=cwd)


def ensure_pki(directory):
    """Create a CA, a server certificate for 127.0.0.1/::1/localhost and a client certificate in
    `directory`, unless all of them are already there (a restarted stand-in keeps its CA, so
    clients holding the old kubeconfig still trust it). Returns {file: path}."""
    os.makedirs(directory, exist_ok=True)
    paths = {f: os.path.join(directory, f) for f in FILES}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", VALID_DAYS, "-subj", CA_SUBJECT,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _signed(directory, "server", SERVER_SUBJECT,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes.default.svc\n")
    _signed(directory, "client", CLIENT_SUBJECT,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n")
    return paths


def _b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(path, server_url, pki, auth, token=None, style="data", token_file=None,
                     namespace="default"):
    """Write a kubeconfig for `server_url`.

    auth: "cert" (client certificate), "token" (bearer token) or "both".
    style: "data" embeds base64 *-data fields; "files" references the PEM files by path.
    token_file: when given (and a token is in use) the kubeconfig says `tokenFile:` instead of
    `token:`, so clients re-read it like an in-cluster service-account token."""
    if style == "data":
        ca = f"    certificate-authority-data: {_b64(pki['ca.crt'])}\n"
        client = (f"    client-certificate-data: {_b64(pki['client.crt'])}\n"
                  f"    client-key-data: {_b64(pki['client.key'])}\n")
    else:
        ca = f"    certificate-authority: {pki['ca.crt']}\n"
        client = (f"    client-certificate: {pki['client.crt']}\n"
                  f"    client-key: {pki['client.key']}\n")
    user = ""
    if auth in ("cert", "both"):
        user += client
    if auth in ("token", "both"):
        user += f"    tokenFile: {token_file}\n" if token_file else f"    token: {token}\n"
    text = (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: standin\n"
        "  cluster:\n"
        f"    server: {server_url}\n"
        f"{ca}"
        "contexts:\n"
        "- name: standin\n"
        "  context:\n"
        "    cluster: standin\n"
        "    user: standin-admin\n"
        f"    namespace: {namespace}\n"
        "current-context: standin\n"
        "preferences: {}\n"
        "users:\n"
        "- name: standin-admin\n"
        "  user:\n"
        f"{user}"
    )
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
