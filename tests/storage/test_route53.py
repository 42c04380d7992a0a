"""DNS failover's provider client against moto's Route 53 over HTTP: the A record switched, a second switch to
the same address sends nothing, other records untouched, bad names refused before any call."""

from __future__ import annotations

import pytest

from tests.storage.conftest import S3_KEY_ID, S3_SECRET, emulator_logs, moto_emulator  # noqa: F401 - fixtures

pytestmark = pytest.mark.storage


def test_route53_record_follows_the_primary(moto_emulator):
    import boto3

    from blocks.standby import Route53Dns
    from pressfleet.dr.traffic import DnsTraffic
    from pressfleet.validate import InvalidInput

    client = boto3.client("route53", endpoint_url=moto_emulator.url, region_name="us-east-1",
                          aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
    zone = client.create_hosted_zone(Name="dr.example.test.", CallerReference="pressfleet-test")["HostedZone"]["Id"]
    zone_id = zone.rsplit("/", 1)[-1]
    client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE",
        "ResourceRecordSet": {"Name": "other.dr.example.test.", "Type": "A", "TTL": 300,
                              "ResourceRecords": [{"Value": "192.0.2.99"}]}}]})
    dns = DnsTraffic(Route53Dns(hosted_zone_id=zone_id, access_key_id=S3_KEY_ID, secret_access_key=S3_SECRET,
                                endpoint_url=moto_emulator.url, ttl=30))
    assert dns.point("www.dr.example.test", "192.0.2.10") == ["www.dr.example.test. A 192.0.2.10 (TTL 30 s)"]
    assert dns.record("www.dr.example.test") == "192.0.2.10"
    assert dns.point("www.dr.example.test", "192.0.2.10") == []  # already so: no change sent
    assert dns.point("www.dr.example.test", "192.0.2.20")  # the failover
    assert dns.record("www.dr.example.test") == "192.0.2.20"
    assert dns.record("other.dr.example.test") == "192.0.2.99"
    for bad in ("www.dr.example.test; rm", "-x.example.test"):
        with pytest.raises(InvalidInput):
            dns.point(bad, "192.0.2.30")
    with pytest.raises(InvalidInput):
        dns.point("www.dr.example.test", "192.0.2.30 ")
    assert dns.record("www.dr.example.test") == "192.0.2.20"
