"""Owner keys (issue 13 item 4): a key bound to store ids sees only its stores, and only it
(or its report's page token) reads its reports. Routes through chalice.test.Client and
the worker through generated SQS events, on in-process moto (the policy without AWS:
tests/unit/test_owner_keys.py)."""
from __future__ import annotations

import csv
import io
import json
import re
import uuid
from typing import Optional

import pytest

from chalicelib.storage.owner_keys import OwnerKeyRepository
from storemon_app import cli
from tests import fixtures
from tests.integration.test_api import _run_queued_parts

OWNER_A = frozenset({fixtures.BIG_ID})
OWNER_B = frozenset({fixtures.NIGHT_OWL, fixtures.SILENT})


# -- through the API -----------------------------------------------------------------

@pytest.fixture
def owners(aws) -> dict[str, str]:
    """Two owners with disjoint stores of the fixture fleet, and a revoked key: name -> secret."""
    repository = OwnerKeyRepository()
    secrets = {"a": "smk-test-owner-a-0000000000", "b": "smk-test-owner-b-0000000000",
               "revoked": "smk-test-revoked-0000000000"}
    repository.add(secrets["a"], "Owner A", OWNER_A)
    repository.add(secrets["b"], "Owner B", OWNER_B)
    repository.revoke(repository.add(secrets["revoked"], "Gone", OWNER_A))
    return secrets


def _headers(secret: Optional[str]) -> dict[str, str]:
    return {"x-api-key": secret} if secret else {}


def _complete(client, secret: Optional[str], body: Optional[dict] = None, query: str = "") -> dict:
    headers = {**_headers(secret), **({"Content-Type": "application/json"} if body else {})}
    response = client.http.post(f"/trigger_report{query}", headers=headers,
                                body=json.dumps(body) if body else None)
    assert response.status_code == 202, response.body
    report_id = response.json_body["report_id"]
    _run_queued_parts(client)
    view = client.http.get(f"/get_report?report_id={report_id}", headers=_headers(secret)).json_body
    assert view["status"] == "Complete", view
    return view


def _csv(client, report_id: str, secret: Optional[str]) -> dict[str, list[str]]:
    response = client.http.get(f"/get_report?report_id={report_id}&format=csv", headers=_headers(secret))
    assert response.status_code == 200, response.body
    return {row[0]: row for row in list(csv.reader(io.StringIO(response.body.decode())))[1:]}


def _detail(report_id: str) -> list[dict[str, str]]:
    from chalicelib.aws import s3_client
    from chalicelib.reporting import detail_report_key
    from chalicelib.settings import Settings

    settings = Settings.from_env()

    body = s3_client().get_object(Bucket=settings.bucket, Key=detail_report_key(report_id))["Body"].read()
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_a_scoped_key_sees_only_its_stores(client, ingested, owners):
    """The issue's done-when: each owner's report holds its stores only, row for row the
    fleet report's, and every other caller gets the same 404 as for an unknown id."""
    fleet = _complete(client, None)
    fleet_rows = _csv(client, fleet["report_id"], None)
    assert set(fleet_rows) == OWNER_A | OWNER_B
    for name, stores in (("a", OWNER_A), ("b", OWNER_B)):
        view = _complete(client, owners[name])
        report_id = view["report_id"]
        rows = _csv(client, report_id, owners[name])
        assert set(rows) == stores and all(rows[s] == fleet_rows[s] for s in stores)
        assert view["rows"] == len(stores)
        assert view["evidence"]["stores_without_polls"]["week"] == (fixtures.SILENT in stores)
        assert {row["store_id"] for row in _detail(report_id)} == stores
        page = client.http.get(f"/reports/{report_id}", headers=_headers(owners[name])).body.decode()
        assert set(re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', page)) == stores
        unknown = client.http.get(f"/get_report?report_id={uuid.uuid4()}", headers=_headers(owners[name]))
        other = owners["b" if name == "a" else "a"]
        for who in (other, None):  # the other owner, and the fleet client
            for path in (f"/get_report?report_id={report_id}",
                         f"/get_report?report_id={report_id}&format=csv", f"/reports/{report_id}",
                         f"/stores/{sorted(stores)[0]}/timeline?report_id={report_id}"):
                response = client.http.get(path, headers=_headers(who))
                assert response.status_code == 404, (name, who, path)
                assert response.json_body == {**unknown.json_body, "error": f"no report with id {report_id}"}
        # an owner does not read the fleet's report either
        assert client.http.get(f"/get_report?report_id={fleet['report_id']}",
                               headers=_headers(owners[name])).status_code == 404
    # timelines: within the key's stores 200, outside 404 (by report and by as_of)
    view_a = _complete(client, owners["a"])
    ok = client.http.get(f"/stores/{fixtures.BIG_ID}/timeline?report_id={view_a['report_id']}",
                         headers=_headers(owners["a"]))
    assert ok.status_code == 200 and ok.json_body["report_row"]["store_id"] == fixtures.BIG_ID
    for path in (f"/stores/{fixtures.NIGHT_OWL}/timeline?report_id={view_a['report_id']}",
                 f"/stores/{fixtures.NIGHT_OWL}/timeline?as_of=2023-01-25T18:00:00Z"):
        response = client.http.get(path, headers=_headers(owners["a"]))
        assert response.status_code == 404 and "no store with id" in response.json_body["error"], path
    assert client.http.get(f"/stores/{fixtures.BIG_ID}/timeline?as_of=2023-01-25T18:00:00Z",
                           headers=_headers(owners["a"])).status_code == 200


def test_explicit_store_ids(client, ingested, owners):
    within = _complete(client, owners["b"], body={"store_ids": [fixtures.NIGHT_OWL]})
    assert set(_csv(client, within["report_id"], owners["b"])) == {fixtures.NIGHT_OWL}
    by_query = _complete(client, owners["b"], query=f"?store_ids={fixtures.SILENT}")
    assert set(_csv(client, by_query["report_id"], owners["b"])) == {fixtures.SILENT}
    # the fleet client may name any stores; its report is the fleet's to read
    fleet = _complete(client, None, body={"store_ids": [fixtures.BIG_ID, fixtures.NIGHT_OWL]})
    assert set(_csv(client, fleet["report_id"], None)) == {fixtures.BIG_ID, fixtures.NIGHT_OWL}
    outside = client.http.get(f"/stores/{fixtures.SILENT}/timeline?report_id={fleet['report_id']}")
    assert outside.status_code == 404
    cases = [({"store_ids": [fixtures.NIGHT_OWL, fixtures.BIG_ID]}, owners["b"], fixtures.BIG_ID),
             ({"store_ids": ["ok", 'bad"id']}, None, "separator"),
             ({"store_ids": []}, None, "at least one"),
             ({"store_ids": f"{fixtures.SILENT},{fixtures.BIG_ID}"}, None, None),
             ({"store_ids": [fixtures.BIG_ID, "no-such-store"]}, None, "'no-such-store'"),
             ({"store_ids": "typo1,typo2"}, None, "2 store(s) no poll was ever ingested for"),
             ({"store_ids": [7]}, None, "list of store id strings")]
    for body, secret, named in cases:
        response = client.http.post("/trigger_report", body=json.dumps(body),
                                    headers={**_headers(secret), "Content-Type": "application/json"})
        if named is None:  # a string is a comma-separated list of known stores: fine
            assert response.status_code == 202
            continue
        assert response.status_code == 400 and named in response.json_body["error"], (body, response.body)
    response = client.http.get(f"/trigger_report?store_ids={fixtures.BIG_ID},{fixtures.SILENT}",
                               headers=_headers(owners["b"]))
    assert response.status_code == 400 and repr(fixtures.BIG_ID) in response.json_body["error"]
    assert fixtures.SILENT not in response.json_body["error"]


def test_a_revoked_key_is_refused(client, ingested, owners):
    for path in ("/trigger_report", f"/get_report?report_id={uuid.uuid4()}"):
        response = client.http.get(path, headers=_headers(owners["revoked"]))
        assert response.status_code == 401 and "revoked" in response.json_body["error"]


def test_page_url_opens_the_page_without_a_key(client, ingested, owners, monkeypatch):
    monkeypatch.setenv("STOREMON_API_KEY", "the-fleet-key-000000000000")
    view = _complete(client, owners["a"])
    report_id = view["report_id"]
    page_url = view["page_url"]
    path = page_url[page_url.index("/shared/"):]
    token = path.split("token=", 1)[1]
    assert len(token) >= 43
    page = client.http.get(path)  # no key: the token is the check
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert set(re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', html)) == OWNER_A
    # the page's links carry the token, and open without a key too (relative to /shared/reports/)
    link = re.search(r'<td class="id"><a href="([^"]*)"', html).group(1).replace("&amp;", "&")
    assert link.startswith("../stores/") and f"token={token}" in link
    timeline = client.http.get("/shared/" + link[len("../"):])
    assert timeline.status_code == 200 and timeline.json_body["store_id"] == fixtures.BIG_ID
    assert 'name="token"' in html  # the search form keeps it
    # the same token opens /reports/{id} instead of the header
    assert client.http.get(f"/reports/{report_id}?token={token}").status_code == 200
    unknown = client.http.get(f"/get_report?report_id={uuid.uuid4()}",
                              headers=_headers("the-fleet-key-000000000000")).json_body
    for wrong in (f"/shared/reports/{report_id}?token={'x' * len(token)}", f"/shared/reports/{report_id}",
                  f"/reports/{report_id}?token={token[:-1]}",
                  f"/shared/stores/{fixtures.BIG_ID}/timeline?report_id={report_id}&token=nope"):
        response = client.http.get(wrong, headers=_headers(owners["a"]))  # a key does not open /shared
        assert response.status_code == 404, wrong
        assert response.json_body == {**unknown, "error": f"no report with id {report_id}"}
    # a token opens only its own report, and never get_report
    other = _complete(client, owners["b"])
    assert client.http.get(f"/shared/reports/{other['report_id']}?token={token}").status_code == 404
    assert client.http.get(f"/get_report?report_id={report_id}&token={token}").status_code == 401


def test_without_owner_keys_nothing_changes(client, ingested, monkeypatch):
    view = _complete(client, "any-key-at-all")  # no STOREMON_API_KEY: no check, as before
    assert set(_csv(client, view["report_id"], None)) == OWNER_A | OWNER_B
    assert view["page_url"].startswith("/shared/reports/") or "://" in view["page_url"]
    monkeypatch.setenv("STOREMON_API_KEY", "the-fleet-key-000000000000")
    assert client.http.post("/trigger_report").status_code == 401
    assert client.http.post("/trigger_report", headers=_headers("wrong")).json_body["error"] == \
        "a valid API key is required in the x-api-key header"
    fleet_key = _headers("the-fleet-key-000000000000")
    assert client.http.post("/trigger_report", headers=fleet_key).status_code == 202


# -- the CLI ---------------------------------------------------------------------------

def test_keys_create_list_revoke(aws, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: None)
    assert cli.main(["keys", "create", "--owner", "Owner A", "--stores", f"{fixtures.BIG_ID}, b2"]) == 0
    out = capsys.readouterr().out
    secret = re.search(r"secret \(shown once, send it as x-api-key\): (smk[0-9a-f]{48})", out).group(1)
    key = OwnerKeyRepository().by_secret(secret)
    assert key is not None and key.store_ids == {fixtures.BIG_ID, "b2"} and key.owner == "Owner A"
    assert secret not in json.dumps(key.attribute_values, default=str)  # only its hash is stored
    stores = tmp_path / "stores.txt"
    stores.write_text("# owner B\nn1\n\nn2,n3\nbad|id\n")
    assert cli.main(["keys", "create", "--owner", "B", "--stores-file", str(stores)]) == 1
    assert f"{stores}:5: store_id 'bad|id' holds the separator '|'" in capsys.readouterr().err
    stores.write_text("# owner B\nn1\n\nn2,n3\n")
    assert cli.main(["keys", "create", "--owner", "B", "--stores-file", str(stores)]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key.key_id in listing and "Owner A" in listing and "smk" not in listing
    assert cli.main(["keys", "revoke", key.key_id[:6]]) == 0
    assert "revoked key" in capsys.readouterr().out and OwnerKeyRepository().by_secret(secret).revoked
    assert cli.main(["keys", "revoke", "ffffffff"]) == 1
    assert "0 keys start with" in capsys.readouterr().err


def test_keys_create_registers_an_api_gateway_key(aws, monkeypatch, capsys):
    import boto3

    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: None)
    gateway = boto3.client("apigateway", region_name="us-east-1")
    plan = gateway.create_usage_plan(name="storemon-dev")["id"]
    assert cli.main(["keys", "create", "--owner", "A", "--stores", "s1", "--api-gateway"]) == 0
    secret = re.search(r"x-api-key\): (\S+)", capsys.readouterr().out).group(1)
    keys = gateway.get_usage_plan_keys(usagePlanId=plan)["items"]
    assert len(keys) == 1 and keys[0]["value"] == secret
    key = OwnerKeyRepository().by_secret(secret)
    assert key.gateway_key_id == keys[0]["id"]
    assert cli.main(["keys", "revoke", key.key_id]) == 0
    assert gateway.get_api_keys()["items"] == []
