"""infra/resources.json and the .chalice configuration read as files: the one definition of the
resources, what the local applier accepts, what happens to data, and the IAM the code needs
(applying the template on an emulator: tests/integration/test_infra.py)."""
from __future__ import annotations

import json

import pytest

from storemon_app.paths import CHALICE_DIR
from storemon_app.runtime import stage_environment
from storemon_app.stack import StackApplier, TemplateError, load_template


NAME_VARIABLES = {
    "POLLS_TABLE": "PollsTable", "BUSINESS_HOURS_TABLE": "BusinessHoursTable",
    "TIMEZONES_TABLE": "TimezonesTable",
    "REPORT_JOBS_TABLE": "ReportJobsTable", "INGESTIONS_TABLE": "IngestionsTable",
    "DATASET_STATE_TABLE": "DatasetStateTable", "OWNER_KEYS_TABLE": "OwnerKeysTable",
    "DATA_BUCKET": "DataBucket", "REPORT_QUEUE": "ReportQueue",
    "INGEST_QUEUE": "IngestQueue",
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stage_names_match_template(stage):
    env = stage_environment(stage)
    applier = StackApplier(stage)
    resources = applier.template["Resources"]
    for variable, logical in NAME_VARIABLES.items():
        props = resources[logical]["Properties"]
        name = props.get("TableName") or props.get("BucketName") or props.get("QueueName")
        assert applier.resolve(name) == env[variable], variable


def test_policy_files_cover_stage_resources():
    for stage in ("dev", "prod"):
        config = json.loads((CHALICE_DIR / "config.json").read_text())["stages"][stage]
        policy = json.loads((CHALICE_DIR / config["iam_policy_file"]).read_text())
        text = json.dumps(policy)
        assert f"storemon-{stage}-" in text and config["autogen_policy"] is False


def test_what_the_applier_cannot_reproduce_is_refused_before_anything_is_created():
    template = load_template()
    StackApplier("dev", template=template).validate()
    template["Resources"]["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    with pytest.raises(TemplateError, match="AWS::SNS::Topic is not supported"):
        StackApplier("dev", template=template).validate()
    template = load_template()
    template["Resources"]["PollsTable"]["Properties"]["StreamSpecification"] = {"StreamViewType": "NEW_IMAGE"}
    with pytest.raises(TemplateError, match="StreamSpecification"):
        StackApplier("dev", template=template).validate()


def test_packaged_event_sources_reference_the_template_queues():
    """chalice names the queues by ARN strings; the package links them by Fn::GetAtt so
    CloudFormation creates the queues first (`./storemon package`, run in CI, checks the rest)."""
    from storemon_app.packaging import PackagingError, link_event_sources

    def function(queue_arn: str) -> dict:
        return {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"Source": {
            "Type": "SQS", "Properties": {"Queue": {"Fn::Sub": queue_arn}, "BatchSize": 1}}}}}

    template = load_template()
    template["Resources"]["Worker"] = function(
        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:storemon-prod-report-parts")
    assert link_event_sources(template, "prod") == ["ReportQueue"]
    assert template["Resources"]["Worker"]["Properties"]["Events"]["Source"]["Properties"]["Queue"] == \
        {"Fn::GetAtt": ["ReportQueue", "Arn"]}
    template["Resources"]["Stray"] = function("arn:aws:sqs:us-east-1:1:storemon-prod-elsewhere")
    with pytest.raises(PackagingError, match="storemon-prod-elsewhere"):
        link_event_sources(template, "prod")


def test_stateful_resources_say_what_happens_to_their_data():
    """Chosen, not defaulted (README, Deploying): data is retained, queues go with the stack."""
    for logical, resource in load_template()["Resources"].items():
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket"):
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain",
                                                                                     "Retain"), logical
        if resource["Type"] == "AWS::SQS::Queue":
            assert resource["DeletionPolicy"] == "Delete"
            assert "MessageRetentionPeriod" in resource["Properties"]


def test_a_job_record_is_kept_no_longer_than_its_csv():
    from chalicelib.storage.jobs import JOB_RETENTION
    from storemon_app.stack import load_template

    rules = load_template()["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    csv_days = next(r["ExpirationInDays"] for r in rules if r["Prefix"] == "reports/")
    # DynamoDB deletes expired items up to 2 days late: get_report treats them as gone (see app.py)
    assert JOB_RETENTION.days < csv_days


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_policy_lets_a_missing_object_be_told_from_a_forbidden_one(stage):
    """Without s3:ListBucket on the bucket, S3 answers a missing key with 403 AccessDenied, not
    NoSuchKey: a drop deleted before processing would crash-loop to the DLQ with no record."""
    policy = json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            for action in statement["Action"]:
                granted.setdefault(action, set()).update(statement["Resource"] if isinstance(
                    statement["Resource"], list) else [statement["Resource"]])
    bucket = f"arn:aws:s3:::storemon-{stage}-data"
    assert bucket in granted["s3:ListBucket"]          # the bucket itself, not its objects
    assert bucket in granted["s3:ListBucketVersions"]  # finding an overwritten drop's version
    assert bucket + "/*" in granted["s3:GetObjectVersion"]
