"""Container images (issue 15): pressfleet's WordPress PHP-FPM and nginx images built with podman from the
lab's Debian 12 template through the lab's apt proxy: one layer, non-root, a healthcheck, nothing a container
does not run, WordPress core inside; both serve WordPress on a read-only root in one network namespace with no
network; a rebuild is cached and a build that fails half-way leaves the tags as they were."""

from __future__ import annotations

import pytest

from pressfleet.containers import images as img
from pressfleet.containers.podman import Podman, PodmanError

pytestmark = pytest.mark.lab

SALTS = "\n".join(f"{k}={'s' * 40}" for k in ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT",
                                              "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))


@pytest.fixture(scope="module")
def built(lab_pool, prefect_harness):
    from flows.build_images import build_images
    from pressfleet.lab import hosts as lab

    release = lab.ensure_mirror()
    result = build_images(release_url=release["url"], release_sha256=release["sha256"], naive=True)
    return result, release, Podman()


def _image(result, name):
    return next(b for b in result["images"] if b["name"] == name)


def _sh(podman, ref, script, *opts):
    return podman.run("run", "--rm", "--network", "none", "--no-healthcheck", *opts, "--entrypoint", "sh", ref,
                      "-c", script, check=False)


def test_images_are_one_non_root_layer_with_a_healthcheck_far_smaller_than_the_naive_build(built):
    result, release, podman = built
    php, nginx, naive = (_image(result, n) for n in ("php", "nginx", "naive"))
    assert result["wordpress_version"] == release["version"]
    for b in (php, nginx):
        assert b["layers"] == 1 and b["user"] == "10001:10001" and b["healthcheck"][0] == "CMD", b
        assert b["ref"].endswith(f":{release['version']}-{result['content_sha256'][:12]}")
        info = podman.inspect(b["ref"])
        assert info.labels["io.pressfleet.wordpress.version"] == release["version"]
    assert naive["layers"] > 1 and naive["user"] in ("", "root")
    assert php["size_mb"] + nginx["size_mb"] < 0.75 * naive["size_mb"], (php["size_mb"], nginx["size_mb"], naive["size_mb"])
    pkgs = {p.split()[0] for p in php["packages"]}
    assert {"php8.2-fpm", "php8.2-mysql", "php8.2-redis", "php8.2-imagick"} <= pkgs
    assert not pkgs & {"systemd", "openssh-server", "sudo", "python3", "gcc", "make", "cpp"}


def test_nothing_is_left_that_a_container_does_not_run(built):
    result, _, podman = built
    for name in ("php", "nginx"):
        ref = _image(result, name)["ref"]
        out = _sh(podman, ref, "for c in gcc cc make apt-get sshd systemctl python3 sudo; do command -v $c; done; "
                               "find /var/lib/apt/lists /var/cache/apt /usr/share/doc /usr/share/man -type f 2>/dev/null | wc -l; "
                               "cat /var/www/site/htdocs/wp-includes/version.php | grep '^.wp_version'")
        lines = out.stdout.split("\n")
        assert lines[0] == "0", out.stdout  # no compiler, apt, sshd, systemd, python, sudo; lists, caches, docs empty
        if name == "php":
            assert f"$wp_version = '{result['wordpress_version']}';" in out.stdout
        else:  # nginx only needs to know PHP files exist: they are there, empty
            sizes = _sh(podman, ref, "stat -c %s /var/www/site/htdocs/index.php /var/www/site/htdocs/wp-includes/css/dashicons.min.css")
            index, css = sizes.stdout.split()
            assert index == "0" and int(css) > 1000, sizes.stdout


def test_the_two_images_serve_wordpress_on_a_read_only_root_with_no_network(built):
    result, _, podman = built
    php, nginx = _image(result, "php")["ref"], _image(result, "nginx")["ref"]
    names = ["pf-test-php", "pf-test-nginx"]
    podman.run("rm", "-f", *names, check=False)
    try:
        podman.run("volume", "rm", "-f", "pf-test-uploads", check=False)
        podman.run("volume", "create", "pf-test-uploads")
        podman.run("run", "-d", "--name", names[0], "--network", "none", *img.RUN_OPTIONS["php"], "-v", "pf-test-uploads:/var/www/site/htdocs/wp-content/uploads",
                   "-e", "DB_HOST=127.0.0.1", "-e", "DB_PASSWORD=not-a-real-one", "-e", f"WP_SALTS={SALTS}", php)
        podman.run("run", "-d", "--name", names[1], "--network", f"container:{names[0]}", *img.RUN_OPTIONS["nginx"],
                   "-v", "pf-test-uploads:/var/www/site/htdocs/wp-content/uploads:ro", nginx)

        def status(path: str) -> str:
            return podman.run("exec", names[1], "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              f"http://127.0.0.1:8080{path}", check=False).stdout

        import time

        for _ in range(30):
            if status("/nginx-health") == "200":
                break
            time.sleep(0.5)
        assert status("/nginx-health") == "200"
        assert status("/wp-includes/css/dashicons.min.css") == "200"
        for denied in ("/readme.html", "/wp-config.php", "/.git/config", "/xmlrpc.php", "/wp-content/uploads/x.php"):
            assert status(denied) == "403", denied
        # PHP answers through nginx: no database here, so WordPress's own database error page (500)
        page = podman.run("exec", names[1], "curl", "-s", "http://127.0.0.1:8080/", check=False).stdout
        assert "Error establishing a database connection" in page, page[:500]
        for name in names:
            assert podman.run("healthcheck", "run", name, check=False).returncode == 0, name
        # the site's PHP may write its uploads, never its code or the root file system
        assert podman.run("exec", names[0], "sh", "-c", "touch /var/www/site/htdocs/wp-content/uploads/ok",
                          check=False).returncode == 0
        for target in ("/var/www/site/htdocs/index.php", "/etc/passwd", "/usr/local/bin/x"):
            assert podman.run("exec", names[0], "sh", "-c", f"echo x >> {target}", check=False).returncode != 0, target
    finally:
        podman.run("rm", "-f", *names, check=False)
        podman.run("volume", "rm", "-f", "pf-test-uploads", check=False)


def test_a_rebuild_is_cached_and_a_build_that_fails_half_way_leaves_the_tag(built, tmp_path):
    from flows.build_images import _lab_base
    from pressfleet.render.configs import render_container_files

    result, release, podman = built
    php = _image(result, "php")
    import httpx

    archive = httpx.get(release["url"]).content
    files = img.context_files({**render_container_files(), "php-fpm-healthcheck": img.healthcheck_script()})
    img.write_context(tmp_path, files, archive)
    base, proxy = _lab_base(podman)
    args = {"WORDPRESS_VERSION": result["wordpress_version"], "CONTENT_SHA256": result["content_sha256"]}
    again = img.build(podman, "wordpress-php.Containerfile", php["ref"], tmp_path, base=base, apt_proxy=proxy, args=args)
    assert podman.inspect(php["ref"]).id == php["id"]
    assert again < php["seconds"], (again, php["seconds"])
    broken = (tmp_path / "wordpress-php.Containerfile").read_text().replace(
        "COPY files/wp-config.php", "RUN echo 'the disk filled up' >&2; exit 7\nCOPY files/wp-config.php")
    (tmp_path / "broken.Containerfile").write_text(broken)
    with pytest.raises(PodmanError, match="podman build failed"):
        img.build(podman, "broken.Containerfile", php["ref"], tmp_path, base=base, apt_proxy=proxy, args=args)
    assert podman.inspect(php["ref"]).id == php["id"]
