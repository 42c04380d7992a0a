"""A real ACME server for tests: Debian's pebble and pebble-challtestsrv, bound to the lab bridge.

pebble validates http-01 challenges by connecting to port 80 of the address pebble-challtestsrv's DNS gives for
the domain (a lab host). Its own HTTPS certificate comes from a throwaway CA made here with openssl; hosts trust
it through the site block's `acme_ca_bundle`. Both processes are stopped by PID.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from pressfleet.lab import hosts as lab

BIND = str(lab.namespace().bridge_address)  # the lab namespace of the session (tests: PRESSFLEET_LAB_NAMESPACE=test)
ACME_PORT, DNS_PORT, MGMT_PORT = 14000, 8053, 8055


def _wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {log.read_text()[-500:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((BIND, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not listen on {BIND}:{port}")


class Pebble:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.procs: list[subprocess.Popen] = []

    @property
    def directory_url(self) -> str:
        return f"https://{BIND}:{ACME_PORT}/dir"

    @property
    def ca_pem(self) -> str:
        return (self.dir / "ca.pem").read_text()

    def start(self) -> "Pebble":
        lab.ensure_network()
        d = self.dir
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pressfleet test ACME CA",
                        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={BIND}",
                        "-keyout", str(d / "key.pem"), "-out", str(d / "csr.pem")], check=True, capture_output=True)
        (d / "san.ext").write_text(f"subjectAltName=IP:{BIND}\n")
        subprocess.run(["openssl", "x509", "-req", "-in", str(d / "csr.pem"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                        "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.ext"), "-out", str(d / "cert.pem")],
                       check=True, capture_output=True)
        (d / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"{BIND}:{ACME_PORT}", "managementListenAddress": f"{BIND}:15000",
            "certificate": str(d / "cert.pem"), "privateKey": str(d / "key.pem"),
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        dns_log = d / "challtestsrv.log"
        dns = subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", f"{BIND}:{DNS_PORT}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"{BIND}:{MGMT_PORT}", "-defaultIPv4", "", "-defaultIPv6", ""],
            stdout=open(dns_log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(dns)
        _wait_port(MGMT_PORT, dns, dns_log)
        log = d / "pebble.log"
        pebble = subprocess.Popen(
            ["pebble", "-config", str(d / "pebble.json"), "-dnsserver", f"{BIND}:{DNS_PORT}"],
            env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PATH": "/usr/bin:/bin"},
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(pebble)
        _wait_port(ACME_PORT, pebble, log)
        return self

    def add_a(self, domain: str, address: str) -> None:
        body = json.dumps({"host": domain.rstrip(".") + ".", "addresses": [address]}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://{BIND}:{MGMT_PORT}/add-a", data=body, method="POST"), timeout=5)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
