// Certificates for the TLS tests: a temporary directory and self-signed EC P-256 certificates made there.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace sluice::test {

namespace fs = std::filesystem;

// A temporary directory, removed with everything in it.
struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

// Writes a self-signed certificate for `host` (subjectAltName DNS, usable as its own CA) and its key.
inline void make_certificate(const std::string& host, const std::string& cert_path, const std::string& key_path) {
  static long serial = 1;  // one per certificate, in this process
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  REQUIRE(key);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(host.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "DNS:" + host},
                                   std::pair{NID_basic_constraints, std::string("critical,CA:TRUE")}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    REQUIRE(ext);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  REQUIRE(f);
  PEM_write_X509(f, cert.get());
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  REQUIRE(f);
  PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// The files the tests use: a certificate for localhost, another for other.example, and two bad files.
struct Files {
  TempDir dir;
  std::string cert = dir.file("server.crt"), key = dir.file("server.key");
  std::string other_cert = dir.file("other.crt"), other_key = dir.file("other.key");
  std::string garbage = dir.file("garbage.pem"), missing = dir.file("missing.pem");

  Files() {
    make_certificate("localhost", cert, key);
    make_certificate("other.example", other_cert, other_key);
    std::ofstream(garbage) << "not a certificate\n";
  }
};

}  // namespace sluice::test
