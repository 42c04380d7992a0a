"""Provisioning figures on lab hosts (issue 3, "Benchmarks"), all from one run on this machine.

1. Provision time of `provision_wordpress` from a pristine host, against the floor: a bare
   `apt-get update && apt-get install --no-install-recommends` of the same packages on a second pristine
   host. Both go through the lab's apt proxy, warmed first (a third pristine host downloads the packages
   and throws them away), so neither pays for the mirror.
2. Re-run time with nothing to change (and whether the re-run said so).
3. Home page requests/s, page-cached (X-Cache-Status HIT) and uncached (a query string bypasses the
   page cache), against nginx serving a copy of the home page's HTML as a static file from the same
   web root. wrk runs ON the provisioned host against https://blog.lab.test/ (127.0.0.1 through the
   host's /etc/hosts, so TLS with the right SNI and no bridge in the path): it measures the server, but
   wrk shares the host's 2 cores with nginx, PHP-FPM and MariaDB.
4. Time to first byte p50/p95, cached and uncached: sequential curl on the host, one new TCP+TLS
   connection per request (curl's time_starttransfer, so the TLS handshake is included).
5. Lynis hardening index of the provisioned host and of a pristine host, with Lynis's suggestions
   for the provisioned host.

Order: warm the proxy and score a pristine host (bp2), provision bp1 and re-run, the floor on a fresh bp2,
Lynis on bp1, then the HTTP figures on bp1 (which add wrk, an /etc/hosts line and a static file to it).
Both hosts are taken down at the end. The machine's load average and the other lab hosts running are
recorded: the lab shares 2 cores with whatever else runs, and every figure here moves with that.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import statistics
import time

from pressfleet.lab import hosts as lab
from pressfleet.ssh.converge import APT_ENV, APT_OPTS
from pressfleet.ssh.remote import run as remote_run

PROVISIONED = "bp1"
OTHER = "bp2"
DOMAIN = "blog.lab.test"
STATIC_NAME = "pf-bench-static.html"
UNCACHED_QUERY = "?pf_bench=1"  # any query string bypasses the page cache (http.conf.j2, $pf_skip_args)
WRK_THREADS = 2
WRK_CONNECTIONS = 16
WRK_SECONDS = 10
WRK_TIMEOUT = 30  # wrk drops replies slower than its timeout (2 s by default) from the latency figures
TTFB_REQUESTS = 200

TARGETS = {
    "provision_over_floor_ratio_max": 2.0,
    "rerun_seconds_max": 10.0,
    "cached_over_static_rps_min": 0.80,
    "uncached_ttfb_p95_ms_max": 50.0,
    "lynis_hardening_index_min": 80,
}
ANCHORS = {
    "apt_floor_seconds": 24, "static_40kb_rps": 27000, "stock_wp61_uncached_rps": 72, "stock_wp61_ttfb_ms": 24,
    "peer_fastcgi_cache_rps": 22000, "lynis_pristine": 58,
}

# Lynis tests that cannot apply to a lab host (systemd-nspawn container: no kernel, boot loader or
# partitions of its own) or that are about Lynis itself; everything else is something a flow could do.
LYNIS_NOT_ACTIONABLE = {
    "LYNIS": "about Lynis's own release age",
    "KRNL-5788": "a container has no /vmlinuz",
    "KRNL-5830": "kernel reboot check (container)",
    "BOOT-5122": "boot loader password (no boot loader in a container)",
    "FILE-6310": "separate partitions: a disk layout decision, not a provisioning step",
    "DEB-0810": "apt-listbugs breaks apt without internet (LAB.md)",
}


def _sh(conn, script: str, *, timeout: float = 600, check: bool = True):
    return remote_run(conn, ["sh", "-c", script], timeout=timeout, check=check)


def _apt(args: list[str]) -> str:
    return shlex.join([*APT_ENV, "apt-get", *APT_OPTS, *args])


def _percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return round(float(m.group(1)) * _UNITS[m.group(2)], 3) if m else float("nan")


def _parse_wrk(out: str) -> dict:
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),\s*([\d.]+\w+) read", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    lat = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    return {
        "requests_per_second": float(rps.group(1)) if rps else None,
        "requests": int(total.group(1)) if total else None,
        "bytes_read": total.group(4) if total else None,
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "latency_ms": lat,
    }


def _wrk(conn, url: str) -> dict:
    _sh(conn, f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d2s {shlex.quote(url)} >/dev/null", timeout=60)  # warm-up
    out = _sh(conn, f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s --timeout {WRK_TIMEOUT}s --latency "
                    f"{shlex.quote(url)}",
              timeout=WRK_SECONDS + 60).stdout
    result = _parse_wrk(out)
    result["url"] = url
    return result


def _ttfb(conn, url: str) -> dict:
    fmt = r"%{time_appconnect} %{time_starttransfer} %{http_code} %header{x-cache-status}\n"
    script = (f"for i in $(seq {TTFB_REQUESTS}); do curl -sk -o /dev/null -w {shlex.quote(fmt)} "
              f"{shlex.quote(url)}; done")
    rows = [line.split() for line in _sh(conn, script, timeout=600).stdout.splitlines() if line.strip()]
    ttfb = [float(r[1]) * 1000 for r in rows]
    server = [(float(r[1]) - float(r[0])) * 1000 for r in rows]
    codes = sorted({r[2] for r in rows})
    cache = sorted({r[3] if len(r) > 3 else "-" for r in rows})
    return {
        "url": url, "requests": len(rows), "status_codes": codes, "x_cache_status": cache,
        "ttfb_p50_ms": round(_percentile(ttfb, 50), 2), "ttfb_p95_ms": round(_percentile(ttfb, 95), 2),
        "ttfb_mean_ms": round(statistics.fmean(ttfb), 2),
        "after_tls_handshake_p50_ms": round(_percentile(server, 50), 2),
        "after_tls_handshake_p95_ms": round(_percentile(server, 95), 2),
    }


def _sizing_record(host) -> dict | None:
    """/etc/pressfleet/sizing.json (the PHP worker memory the pool was sized with): explains a re-run's change."""
    import json

    from tests.conftest import connect_lab

    conn = connect_lab(host)
    try:
        out = remote_run(conn, ["cat", "/etc/pressfleet/sizing.json"], check=False)
        return json.loads(out.stdout) if out.exited == 0 else None
    finally:
        conn.close()


def _lynis(conn) -> dict:
    _sh(conn, _apt(["install", "-y", "-q", "--no-install-recommends", "lynis"]) + " >/dev/null", timeout=300)
    t0 = time.monotonic()
    out = remote_run(conn, ["lynis", "audit", "system", "--quick", "--no-colors"], timeout=600, check=False).stdout
    seconds = time.monotonic() - t0
    index = re.search(r"Hardening index\s*:\s*(\d+)", out)
    report = remote_run(conn, ["cat", "/var/log/lynis-report.dat"], check=False).stdout
    suggestions, warnings = [], []
    for line in report.splitlines():
        for key, bucket in (("suggestion[]=", suggestions), ("warning[]=", warnings)):
            if line.startswith(key):
                test, text, detail, *_ = (line[len(key):].split("|") + ["-", "-", "-"])
                bucket.append({"test": test, "text": text, "detail": detail})
    return {
        "hardening_index": int(index.group(1)) if index else None,
        "tests_performed": int(m.group(1)) if (m := re.search(r"Tests performed\s*:\s*(\d+)", out)) else None,
        "seconds": round(seconds, 1), "suggestions": suggestions, "warnings": warnings,
    }


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from blocks.site import WordPressSite
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for
    from tasks.base import stack_packages
    from tests.conftest import connect_lab

    lab.preflight()
    started = time.monotonic()
    others_up = [h["name"] for h in lab.list_hosts() if h["running"] and h["name"] not in (PROVISIONED, OTHER)]
    load_start = os.getloadavg()
    rel = lab.ensure_mirror()
    site = WordPressSite(name="blog", domain=DOMAIN, admin_email="admin@lab.test", title="Bench",
                         tls_mode="self-signed", release_url=rel["url"], release_sha256=rel["sha256"])
    packages = stack_packages(site.php_version)
    quiet = lambda m: None  # noqa: E731
    result: dict = {"targets": TARGETS, "anchors_from_issue": ANCHORS, "wordpress_release": rel["version"]}
    rerun_changed = None
    for name in (PROVISIONED, OTHER):
        lab.down(name)
    try:
        # -- warm the apt proxy with the stack's packages (downloaded, then thrown away), and score a
        #    pristine host with Lynis while it is there (lynis is the only package it installs).
        other = lab.up(OTHER, log=quiet)
        oc = connect_lab(other)
        t0 = time.monotonic()
        _sh(oc, _apt(["update", "-q"]) + " >/dev/null && "
            + _apt(["install", "-y", "-q", "--download-only", "--no-install-recommends", *packages]) + " >/dev/null && "
            + _apt(["clean"]), timeout=900)
        result["proxy_warmup_seconds"] = round(time.monotonic() - t0, 1)
        pristine_lynis = _lynis(oc)
        oc.close()
        lab.down(OTHER)

        # -- 1 and 2: provision from pristine, then re-run
        host = lab.up(PROVISIONED, log=quiet)
        server = server_for(host)
        with prefect_test_harness(server_startup_timeout=60):
            t0 = time.monotonic()
            first = provision_wordpress(server=server, site=site)
            first_wall = time.monotonic() - t0
            sizing_first = _sizing_record(host)
            t0 = time.monotonic()
            second = provision_wordpress(server=server, site=site)
            second_wall = time.monotonic() - t0
            sizing_second = _sizing_record(host)
        rerun_changed = second.changed

        # -- 1: the floor, on a fresh pristine host, after the provisioning (warm proxy for both)
        other = lab.up(OTHER, log=quiet)
        oc = connect_lab(other)
        t0 = time.monotonic()
        _sh(oc, _apt(["update", "-q"]) + " >/dev/null && "
            + _apt(["install", "-y", "-q", "--no-install-recommends", *packages]) + " >/dev/null", timeout=900)
        floor = time.monotonic() - t0
        oc.close()
        lab.down(OTHER)
        packages_step = next((s["seconds"] for s in first.steps if s["name"] == "packages"), None)
        result["provision"] = {
            "flow_seconds": first.seconds,
            "wall_seconds": round(first_wall, 1),
            "changed": first.changed,
            "steps_seconds": {s["name"]: s["seconds"] for s in first.steps},
            "packages_step_seconds": packages_step,
            "apt_floor_seconds": round(floor, 1),
            "apt_floor_command": "apt-get update && apt-get install -y --no-install-recommends <tasks.base.stack_packages()>",
            "packages": packages,
            "ratio_flow_over_floor": round(first.seconds / floor, 2),
            "ratio_packages_step_over_floor": round(packages_step / floor, 2) if packages_step else None,
            "proxy": "apt proxy warmed before both (packages downloaded on a throw-away host, then deleted)",
            "checks_passed": sum(1 for c in first.checks if c["passed"]),
            "checks_total": len(first.checks),
        }
        result["rerun"] = {
            "flow_seconds": second.seconds,
            "wall_seconds": round(second_wall, 1),
            "changed": second.changed,
            "changed_steps": {s["name"]: s["changed"] for s in second.steps if s["changed"]},
            "steps_seconds": {s["name"]: s["seconds"] for s in second.steps},
            "sizing_record_after_first_run": sizing_first,
            "sizing_record_after_rerun": sizing_second,
        }

        # -- 5: Lynis on the provisioned host, before the measurements below add anything to it
        hc = connect_lab(host)
        provisioned_lynis = _lynis(hc)

        # -- 3 and 4: requests/s and time to first byte, measured on the provisioned host
        _sh(hc, _apt(["install", "-y", "-q", "--no-install-recommends", "wrk"]) + " >/dev/null", timeout=300)
        _sh(hc, f"grep -q ' {DOMAIN}$' /etc/hosts || echo '127.0.0.1 {DOMAIN}' >> /etc/hosts")
        base = f"https://{DOMAIN}/"
        web_root = site.config().web_root
        _sh(hc, f"curl -skf -o /root/pf-home.html {base}{UNCACHED_QUERY} && "
            f"install -m 0644 -o root -g root /root/pf-home.html {web_root}/{STATIC_NAME}")
        probe = _sh(hc, f"for u in {base}{STATIC_NAME} {base} {base} {base}{UNCACHED_QUERY}; do "
                    r"curl -sk -o /dev/null -w '%{http_code} %{size_download} %header{x-cache-status}\n' $u; done").stdout
        rows = [line.split() + ["-"] for line in probe.splitlines()]
        host_info = _sh(hc, "nproc; grep -m1 '^worker_processes' /etc/nginx/nginx.conf; "
                        "grep -h '^pm.max_children' /etc/php/*/fpm/pool.d/*.conf").stdout.split("\n")
        static = _wrk(hc, base + STATIC_NAME)
        cached = _wrk(hc, base)
        uncached = _wrk(hc, base + UNCACHED_QUERY)
        after = _sh(hc, rf"curl -sk -o /dev/null -w '%header{{x-cache-status}}' {base}").stdout.strip()
        result["requests_per_second"] = {
            "tool": f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s --timeout {WRK_TIMEOUT}s (after a 2 s warm-up), run on the "
                    "provisioned host against https://blog.lab.test/ = 127.0.0.1 (HTTPS, keep-alive, no Accept-Encoding: "
                    "uncompressed bodies); wrk shares the host's cores with nginx, PHP-FPM and MariaDB",
            "body_bytes": {"static": int(rows[0][1]), "home_cached": int(rows[2][1]), "home_uncached": int(rows[3][1])},
            "probe_status": {"static": rows[0][0], "home_first": f"{rows[1][0]} {rows[1][2]}",
                             "home_second": f"{rows[2][0]} {rows[2][2]}", "home_uncached": f"{rows[3][0]} {rows[3][2]}"},
            "x_cache_status_after_cached_run": after,
            "uncached_means": f"query string {UNCACHED_QUERY} (any query string bypasses the page cache: X-Cache-Status BYPASS)",
            "static": static, "cached": cached, "uncached": uncached,
            "cached_over_static": round(cached["requests_per_second"] / static["requests_per_second"], 3),
            "uncached_over_static": round(uncached["requests_per_second"] / static["requests_per_second"], 4),
            "host_nproc": host_info[0].strip(),
            "nginx_worker_processes": host_info[1].strip(),
            "php_fpm_pm_max_children": host_info[2].strip() if len(host_info) > 2 else None,
        }
        cached_ttfb = _ttfb(hc, base)
        uncached_ttfb = _ttfb(hc, base + UNCACHED_QUERY)
        result["time_to_first_byte"] = {
            "tool": f"{TTFB_REQUESTS} sequential curl on the provisioned host, a new TCP+TLS connection each "
                    "(time_starttransfer; after_tls_handshake = starttransfer - appconnect)",
            "cached": cached_ttfb, "uncached": uncached_ttfb,
        }

        hc.close()
        before = {(s["test"], s["detail"]) for s in pristine_lynis["suggestions"]}
        actionable = [s for s in provisioned_lynis["suggestions"] if s["test"] not in LYNIS_NOT_ACTIONABLE]
        result["lynis"] = {
            "command": "lynis audit system --quick --no-colors (Debian's lynis, installed on each host)",
            "hardening_index_provisioned": provisioned_lynis["hardening_index"],
            "hardening_index_pristine": pristine_lynis["hardening_index"],
            "tests_performed": {"provisioned": provisioned_lynis["tests_performed"],
                                "pristine": pristine_lynis["tests_performed"]},
            "audit_seconds": {"provisioned": provisioned_lynis["seconds"], "pristine": pristine_lynis["seconds"]},
            "warnings_provisioned": provisioned_lynis["warnings"],
            "suggestions_provisioned_actionable": actionable,
            "suggestions_provisioned_not_actionable": [
                dict(s, why=LYNIS_NOT_ACTIONABLE[s["test"]]) for s in provisioned_lynis["suggestions"]
                if s["test"] in LYNIS_NOT_ACTIONABLE],
            "suggestions_resolved_by_provisioning": sorted(
                f"{t} {d}".strip(" -") for t, d in before - {(s["test"], s["detail"]) for s in provisioned_lynis["suggestions"]}),
            "suggestions_pristine_count": len(pristine_lynis["suggestions"]),
            "suggestions_provisioned_count": len(provisioned_lynis["suggestions"]),
        }
    finally:
        for name in (PROVISIONED, OTHER):
            lab.down(name)

    rps = result["requests_per_second"]
    result["verdict"] = {
        "provision_within_2x_floor": result["provision"]["ratio_flow_over_floor"] <= TARGETS["provision_over_floor_ratio_max"],
        "rerun_under_10s": result["rerun"]["flow_seconds"] < TARGETS["rerun_seconds_max"],
        "rerun_changed_nothing": not result["rerun"]["changed"],
        "cached_at_least_80pct_of_static": rps["cached_over_static"] >= TARGETS["cached_over_static_rps_min"],
        "uncached_ttfb_p95_under_50ms": result["time_to_first_byte"]["uncached"]["ttfb_p95_ms"] < TARGETS["uncached_ttfb_p95_ms_max"],
        "lynis_80_or_more": (result["lynis"]["hardening_index_provisioned"] or 0) >= TARGETS["lynis_hardening_index_min"],
    }
    result["context"] = {
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "other_lab_hosts_running": others_up,
        "benchmark_seconds": round(time.monotonic() - started, 1),
        "units": "seconds (s), milliseconds (ms), requests per second (rps), bytes",
    }
    write_result("provision", result)
    assert rerun_changed is False, f"the re-run changed something: {result['rerun']['changed_steps']}"

