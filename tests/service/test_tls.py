"""TLS and transport rules, end to end with `lfharvest check`.

Certificates are made with the openssl command line in a temporary folder: a private CA, a server
certificate from it for 127.0.0.1, and three bad ones (self-signed, expired, issued for another
host). The fake Langfuse serves each over HTTPS on 127.0.0.1; with `ca_file` naming the CA only
the good one may pass, and each bad one must be refused with a message that says why.

Plain http:// to a host that is not loopback is refused by configuration validation, before any
connection: the test address is from TEST-NET-1 (192.0.2.0/24, RFC 5737) and only ever appears in
a configuration that never gets as far as connecting (checked with strace where it is available).
"""

from __future__ import annotations

import shutil
import subprocess
import unittest
from pathlib import Path

from service_testlib import (EXIT_CONFIG, FakeLangfuse, TempDir, binary, clean_env, figure,
                             to_toml)

NON_LOOPBACK_URL = "http://192.0.2.1"  # TEST-NET-1: documentation only, never routed


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_certificates(folder: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (certificate, key) for: good, wrong_host, expired, self_signed; plus ca.pem."""
    openssl("req", "-x509", *EC_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
            "-subj", "/CN=lfharvest test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)

    # `openssl ca` can back-date a certificate, which the expired one needs.
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    (folder / "ca.cnf").write_text(f"""
[ca]
default_ca = test_ca
[test_ca]
dir = {folder}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[server_ip]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[server_other_host]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong-host.invalid
""")
    out: dict[str, tuple[Path, Path]] = {}
    issued = {
        "good": ("server_ip", ["-days", "30"]),
        "wrong_host": ("server_other_host", ["-days", "30"]),
        "expired": ("server_ip", ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"]),
    }
    for name, (extensions, validity) in issued.items():
        openssl("req", "-new", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", "/CN=127.0.0.1" if name != "wrong_host" else "/CN=wrong-host.invalid",
                cwd=folder)
        openssl("ca", "-batch", "-config", "ca.cnf", "-extensions", extensions, *validity,
                "-in", f"{name}.csr", "-out", f"{name}.pem", "-notext", cwd=folder)
        out[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    openssl("req", "-x509", *EC_KEY, "-keyout", "self_signed.key", "-out", "self_signed.pem",
            "-days", "30", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            cwd=folder)
    out["self_signed"] = (folder / "self_signed.pem", folder / "self_signed.key")
    return out


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("openssl") is None:
            raise AssertionError("the openssl command is needed (Debian package openssl)")
        cls.tmp_cm = TempDir()
        cls.tmp = cls.tmp_cm.__enter__()
        cls.certs = make_certificates(cls.tmp)
        cls.ca = cls.tmp / "ca.pem"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp_cm.__exit__(None, None, None)

    def check(self, base_url: str, langfuse: dict, name: str,
              command: str = "check") -> subprocess.CompletedProcess[str]:
        config = self.tmp / f"{name}.toml"
        config.write_text(to_toml({"langfuse": {"base_url": base_url, "public_key": "pk-lf-demo",
                                                **langfuse}}))
        env = clean_env({"LANGFUSE_SECRET_KEY": "sk-lf-demo"}, home=self.tmp)
        return subprocess.run([binary(), command, "--config", str(config),
                               "--db", str(self.tmp / f"{name}.db")],
                              env=env, capture_output=True, text=True, timeout=60)

    def check_against(self, name: str) -> subprocess.CompletedProcess[str]:
        cert, key = self.certs[name]
        with FakeLangfuse(demo=True, tls_cert=str(cert), tls_key=str(key)) as fake:
            self.assertTrue(fake.base_url.startswith("https://127.0.0.1:"))
            result = self.check(fake.base_url, {"ca_file": str(self.ca)}, name)
        print(f"--- {name}: exit {result.returncode}\n{result.stderr.strip()}")
        return result

    def test_certificate_from_the_configured_ca_passes(self) -> None:
        result = self.check_against("good")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"keys +valid for project proj-demo")

    def test_same_server_without_ca_file_is_rejected(self) -> None:
        cert, key = self.certs["good"]
        with FakeLangfuse(demo=True, tls_cert=str(cert), tls_key=str(key)) as fake:
            result = self.check(fake.base_url, {}, "no_ca_file")
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stderr)
        self.assertIn("TLS certificate rejected", result.stderr)
        self.assertIn("ca_file", result.stderr)

    def assert_rejected(self, name: str, reason: str) -> None:
        result = self.check_against(name)
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stderr)
        self.assertIn("TLS certificate rejected", result.stderr)
        self.assertIn(reason, result.stderr)
        self.assertNotIn("valid for project", result.stdout)
        self.assertNotIn("sk-lf-demo", result.stdout + result.stderr)

    def test_self_signed_certificate_is_rejected(self) -> None:
        self.assert_rejected("self_signed", "self-signed certificate")

    def test_expired_certificate_is_rejected(self) -> None:
        self.assert_rejected("expired", "certificate has expired")

    def test_certificate_for_another_host_is_rejected(self) -> None:
        self.assert_rejected("wrong_host", "matches target host name")

    def test_missing_ca_file_is_a_configuration_error(self) -> None:
        result = self.check("https://127.0.0.1:9", {"ca_file": str(self.tmp / "absent.pem")},
                            "missing_ca")
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stderr)
        self.assertIn("absent.pem", result.stderr)

    def test_plain_http_to_a_non_loopback_host_is_refused_before_connecting(self) -> None:
        strace = shutil.which("strace")
        if strace is None:
            result = self.check(NON_LOOPBACK_URL, {}, "insecure")
            connects = None
        else:
            trace = self.tmp / "insecure.strace"
            config = self.tmp / "insecure.toml"
            config.write_text(to_toml({"langfuse": {"base_url": NON_LOOPBACK_URL,
                                                    "public_key": "pk-lf-demo"}}))
            env = clean_env({"LANGFUSE_SECRET_KEY": "sk-lf-demo"}, home=self.tmp)
            result = subprocess.run(
                [strace, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                 binary(), "check", "--config", str(config), "--db", str(self.tmp / "i.db")],
                env=env, capture_output=True, text=True, timeout=60)
            connects = [line for line in trace.read_text().splitlines()
                        if "AF_INET" in line or "192.0.2." in line]
        print(result.stderr.strip())
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stderr)
        self.assertIn("allow_insecure_http", result.stderr)
        self.assertIn("192.0.2.1", result.stderr)
        self.assertIn("clear text", result.stderr)
        if connects is not None:
            figure("insecure_http_network_syscalls", len(connects))
            self.assertEqual(connects, [], "lfharvest connected although the config was refused")

    def test_allow_insecure_http_lifts_the_refusal(self) -> None:
        # `status` validates the configuration like every command but never contacts the
        # server, so the address is accepted and nothing is sent: it then stops at the missing
        # database.
        refused = self.check(NON_LOOPBACK_URL, {}, "status_insecure", command="status")
        self.assertEqual(refused.returncode, EXIT_CONFIG, refused.stderr)
        allowed = self.check(NON_LOOPBACK_URL, {"allow_insecure_http": True}, "status_allowed",
                             command="status")
        self.assertNotEqual(allowed.returncode, EXIT_CONFIG, allowed.stderr)
        self.assertIn("no database yet", allowed.stderr)

    def test_plain_http_to_loopback_is_allowed(self) -> None:
        with FakeLangfuse(demo=True) as fake:
            self.assertTrue(fake.base_url.startswith("http://127.0.0.1:"))
            result = self.check(fake.base_url, {}, "loopback")
        self.assertEqual(result.returncode, 0, result.stderr)


if __name__ == "__main__":
    unittest.main()
