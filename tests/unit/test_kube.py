"""Kubernetes manifests (issue 15): every shipped overlay and a site's rendered overlay build with kubectl
kustomize, pass the Kubernetes 1.30 JSON schemas strictly, and keep pressfleet's rules. No cluster runs here."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.kube import check, render
from pressfleet.paths import ROOT
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

SITE = SiteConfig(name="shop_one", domain="shop.example.com", aliases=("www.shop.example.com",),
                  admin_email="ops@example.com", php_memory_limit_mb=384, upload_max_mb=32)


def _by(objects, kind, name=None):
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))]


@pytest.mark.parametrize("folder", ["base", "overlays/staging", "overlays/production", "overlays/external-db"])
def test_every_shipped_overlay_builds_and_passes_schemas_and_rules(folder):
    objects = check.check(render.SHIPPED / folder)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "PersistentVolumeClaim", "NetworkPolicy"} <= kinds
    assert ("StatefulSet" in kinds) is (folder != "overlays/external-db")
    [pvc] = _by(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_a_sites_overlay_carries_its_domain_namespace_images_and_sizes(tmp_path):
    render.write(tmp_path, render.files(SITE, render.KubeOptions(image_tag="6.8.7-0123abcd",
                                                                 registry="registry.example.com/team")))
    objects = check.check(tmp_path / "site")
    assert {o["metadata"]["namespace"] for o in objects} == {"pressfleet-shop-one"}
    [ing] = _by(objects, "Ingress")
    assert [r["host"] for r in ing["spec"]["rules"]] == ["shop.example.com", "www.shop.example.com"]
    assert ing["spec"]["tls"][0]["hosts"] == ["shop.example.com", "www.shop.example.com"]
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "32m"
    [wp] = _by(objects, "Deployment", "wordpress")
    php = next(c for c in wp["spec"]["template"]["spec"]["containers"] if c["name"] == "php-fpm")
    assert php["image"] == "registry.example.com/team/wordpress-php:6.8.7-0123abcd"
    assert php["resources"]["limits"]["memory"] == "768Mi" and php["resources"]["requests"]
    [cm] = _by(objects, "ConfigMap", "wordpress-settings")
    assert cm["data"]["WP_HOME"] == "https://shop.example.com" and cm["data"]["DB_NAME"] == "shop_one"
    # the generated ConfigMap's hashed name is what the pod refers to
    assert php["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in php["env"]} == \
        {"DB_PASSWORD": "wordpress-secrets", "WP_SALTS": "wordpress-secrets"}
    [hpa] = _by(objects, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_an_external_database_replaces_mariadb_and_is_the_only_database_address_opened(tmp_path):
    render.write(tmp_path, render.files(SITE, render.KubeOptions(external_db="10.20.0.5")))
    objects = check.check(tmp_path / "site")
    assert not _by(objects, "StatefulSet") and not _by(objects, "Service", "mariadb")
    [cm] = _by(objects, "ConfigMap")
    assert cm["data"]["DB_HOST"] == "10.20.0.5"
    [pol] = _by(objects, "NetworkPolicy", "wordpress")
    db = [r for r in pol["spec"]["egress"] if {"protocol": "TCP", "port": 3306} in r.get("ports", [])]
    assert db == [{"to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}], "ports": [{"protocol": "TCP", "port": 3306}]}]


def test_staging_is_small_and_production_spreads(tmp_path):
    render.write(tmp_path, render.files(SITE, render.KubeOptions(environment="staging")))
    objects = check.check(tmp_path / "site")
    [hpa] = _by(objects, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    prod = check.build(render.SHIPPED / "overlays" / "production")
    [wp] = _by(prod, "Deployment", "wordpress")
    assert wp["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_the_checks_catch_a_typo_an_inline_secret_and_a_missing_probe():
    objects = check.build(render.SHIPPED / "overlays" / "production")
    assert check.schema_errors(objects) == [] and check.rule_errors(objects) == []
    broken = copy.deepcopy(objects)
    [wp] = _by(broken, "Deployment", "wordpress")
    php = wp["spec"]["template"]["spec"]["containers"][0]
    php["readinessProbe"]["periodSecond"] = 10  # a typo: strict schemas know no such field
    php.pop("livenessProbe")
    php["env"].append({"name": "DB_ROOT_PASSWORD", "value": "hunter2"})
    php["resources"].pop("limits")
    broken.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops"}, "stringData": {"a": "b"}})
    schema = check.schema_errors(broken)
    assert len(schema) == 1 and "periodSecond" in schema[0]
    rules = " | ".join(check.rule_errors(broken))
    for expected in ["no livenessProbe", "DB_ROOT_PASSWORD is inlined", "requests and limits", "Secret/oops"]:
        assert expected in rules, rules


def test_bad_options_are_refused():
    for kw in [{"environment": "prod"}, {"image_tag": "x;y"}, {"external_db": "db.example.com"},
               {"registry": "bad host/x"}, {"uploads_gi": 0}]:
        with pytest.raises(InvalidInput):
            render.KubeOptions(**kw)
    with pytest.raises(InvalidInput):
        render.site_overlay(SITE, render.KubeOptions(environment="staging", external_db="10.0.0.1"))


def test_the_kubernetes_work_pool_template_is_one_prefect_accepts_and_its_job_is_valid():
    from prefect.server.schemas.actions import validate_base_job_template

    template = json.loads((ROOT / "deployments" / "kubernetes-work-pool.json").read_text())
    validate_base_job_template(template)  # the Prefect server's own check: every placeholder is a variable
    with pytest.raises(ValueError, match="undeclared"):
        validate_base_job_template({**template, "job_configuration": {**template["job_configuration"], "x": "{{ nope }}"}})
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(template["variables"])
    variables = template["variables"]["properties"]
    # what the prefect-kubernetes worker fills in: variables' defaults, env as a list, the command as args
    fill = {name: spec.get("default") for name, spec in variables.items()}
    fill.update(env=[{"name": k, "value": v} for k, v in fill["env"].items()],
                command=["prefect", "flow-run", "execute"])
    job = json.dumps(template["job_configuration"]["job_manifest"])
    for name, value in fill.items():
        job = job.replace('"{{ ' + name + ' }}"', json.dumps(value))
    assert "{{" not in job.replace("{{ name }}-", "")
    manifest = json.loads(job)
    manifest["metadata"]["name"] = "pressfleet-flow-run"
    assert check.schema_errors([manifest]) == []
    [c] = manifest["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["limits"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    assert template["job_configuration"]["namespace"] == "{{ namespace }}"
