"""Real git repositories of a small WordPress plugin for the site-code tests (built with git, committed, tagged).

The plugin prints `pf-hello VERSION says GREETING` in the page footer; GREETING comes from a library in
packages/greeter that Composer installs through a path repository (packagist is off: nothing is downloaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

PLUGIN = """<?php
/**
 * Plugin Name: pf-hello
 * Version: {version}
 * Description: pressfleet's site-code test plugin.
 */
require_once __DIR__ . '/vendor/autoload.php';
{extra}
add_action('wp_footer', function () {{
    echo '<!-- pf-hello {version} says ' . \\PfHello\\Greeter::greeting() . ' -->';
}});
"""

GREETER = """<?php
namespace PfHello;

final class Greeter {{
    public static function greeting(): string {{ return '{greeting}'; }}
}}
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "pressfleet tests", "GIT_AUTHOR_EMAIL": "tests@lab.test",
           "GIT_COMMITTER_NAME": "pressfleet tests", "GIT_COMMITTER_EMAIL": "tests@lab.test",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout.strip()


def write_release(repo: Path, version: str, greeting: str, extra: str = "") -> None:
    (repo / "pf-hello.php").write_text(PLUGIN.format(version=version, extra=extra))
    (repo / "pf-hello.css").write_text(f"/* pf-hello {version} */\n")
    lib = repo / "packages" / "greeter"
    (lib / "src").mkdir(parents=True, exist_ok=True)
    (lib / "src" / "Greeter.php").write_text(GREETER.format(greeting=greeting))
    (lib / "composer.json").write_text(json.dumps({"name": "pressfleet/greeter", "version": "1.0.0",
                                                   "autoload": {"psr-4": {"PfHello\\": "src/"}}}))
    (repo / "composer.json").write_text(json.dumps({
        "name": "pressfleet/pf-hello", "type": "wordpress-plugin",
        "repositories": [{"packagist.org": False}, {"type": "path", "url": "packages/greeter"}],
        "require": {"pressfleet/greeter": "*"}}, indent=2))


PHPUNIT_XML = """<?xml version="1.0"?>
<phpunit bootstrap="packages/greeter/src/Greeter.php" colors="false">
  <testsuites><testsuite name="pf-hello"><directory>tests</directory></testsuite></testsuites>
</phpunit>
"""

GREETER_TEST = """<?php
use PHPUnit\\Framework\\TestCase;

final class GreeterTest extends TestCase {{
    public function testGreets(): void {{ $this->assertSame('{greeting}', \\PfHello\\Greeter::greeting()); }}
}}
"""


def write_tests(repo: Path, greeting: str) -> None:
    """PHPUnit tests of the greeter (what a generated pipeline's first step runs)."""
    (repo / "phpunit.xml.dist").write_text(PHPUNIT_XML)
    (repo / "tests").mkdir(exist_ok=True)
    (repo / "tests" / "GreeterTest.php").write_text(GREETER_TEST.format(greeting=greeting))


def commit(repo: Path, message: str, tag: str | None = None) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


def plugin_repo(root: Path) -> Path:
    """pf-hello with tags v1 (hello), v2 (bonjour), v3-broken (a fatal error on every request), and a branch
    `escape` whose tree holds a link to /etc/passwd."""
    repo = root / "pf-hello"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write_release(repo, "1.0.0", "hello")
    commit(repo, "v1", "v1")
    write_release(repo, "2.0.0", "bonjour")
    commit(repo, "v2", "v2")
    write_release(repo, "3.0.0", "broken", extra="pf_hello_undefined_function();")
    commit(repo, "v3: calls a function that does not exist", "v3-broken")
    git(repo, "checkout", "-q", "-b", "escape", "v2")
    (repo / "passwd").symlink_to("/etc/passwd")
    commit(repo, "a link out of the tree")
    git(repo, "checkout", "-q", "main")
    git(repo, "reset", "-q", "--hard", "v2")  # main is v2
    return repo


class Probe:
    """GET https://DOMAIN/ from ADDRESS's firewall side every 200 ms while a block runs; `codes` keeps each
    status ("000": no answer). Used by the site-code tests and bench_containers."""

    def __init__(self, domain: str, address: str, every: float = 0.2) -> None:
        self.domain, self.address, self.every = domain, address, every
        self.codes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            r = subprocess.run(["curl", "-ksS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                                "--resolve", f"{self.domain}:443:{self.address}", f"https://{self.domain}/"],
                               capture_output=True, text=True)
            self.codes.append(r.stdout.strip() or "000")
            self._stop.wait(self.every)

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
