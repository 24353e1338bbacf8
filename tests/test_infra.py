"""infra/resources.json is the one definition: the stage config must name exactly its resources."""
from __future__ import annotations

import json

import boto3
import pytest

from storemon_app.runtime import PROJECT_ROOT, stage_environment
from storemon_app.stack import StackApplier, TemplateError, load_template
from tests import targets

NAME_VARIABLES = {
    "POLLS_TABLE": "PollsTable", "BUSINESS_HOURS_TABLE": "BusinessHoursTable", "TIMEZONES_TABLE": "TimezonesTable",
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
        config = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())["stages"][stage]
        policy = json.loads((PROJECT_ROOT / ".chalice" / config["iam_policy_file"]).read_text())
        text = json.dumps(policy)
        assert f"storemon-{stage}-" in text and config["autogen_policy"] is False


def test_applied_stack_has_ttl_and_notification(aws):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    ttl = dynamodb.describe_time_to_live(TableName=aws["PollsTable"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"
    s3 = boto3.client("s3", region_name="us-east-1")
    queues = s3.get_bucket_notification_configuration(Bucket=aws["DataBucket"])["QueueConfigurations"]
    assert queues[0]["QueueArn"].endswith(aws["IngestQueue"])
    assert queues[0]["Filter"]["Key"]["FilterRules"][0]["Value"] == "incoming/"
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=aws["ReportQueue"])["QueueUrl"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
                         ["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(aws["ReportQueueDeadLetters"])
    # applying twice is harmless (the demo and `up` may meet an existing stack)
    assert StackApplier(targets.NAMES_STAGE).apply() == aws


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


def test_an_emulator_without_ttl_still_gets_the_stack(aws, monkeypatch):
    """dynalite answers UpdateTimeToLive with UnknownOperationException; items then just never expire."""
    from botocore.exceptions import ClientError

    from storemon_app import stack as stack_module

    warnings = []
    monkeypatch.setattr(stack_module.log, "warning", lambda message, *args: warnings.append(message % args))
    applier = StackApplier(targets.NAMES_STAGE)

    def no_ttl(**_):
        raise ClientError({"Error": {"Code": "UnknownOperationException", "Message": ""}}, "UpdateTimeToLive")

    monkeypatch.setattr(applier.dynamodb, "update_time_to_live", no_ttl)
    assert applier.apply() == aws
    assert len(warnings) == 2 and "has no TTL (UnknownOperationException)" in warnings[0]  # polls, report jobs


def test_arns_account_and_partition_come_from_the_emulator(aws):
    """LocalStack's account is 000000000000 and DynamoDB Local's ARNs name its own region:
    nothing may assume moto's 123456789012."""
    applier = StackApplier(targets.NAMES_STAGE)
    applier.apply()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    assert applier.arns["PollsTable"] == dynamodb.describe_table(TableName=aws["PollsTable"])["Table"]["TableArn"]
    queue_account = applier.arns["IngestQueue"].split(":")[4]
    assert applier.resolve({"Fn::Sub": "${AWS::AccountId}"}) == queue_account
    assert applier.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::x"}) == "arn:aws:s3:::x"
    localstack = StackApplier("dev")
    localstack.queue_urls, localstack.arns = {"Q": "url"}, {"Q": "arn:aws:sqs:us-east-1:000000000000:q"}
    assert localstack.account_id() == "000000000000"
    assert StackApplier("dev", region="cn-north-1").partition == "aws-cn"


def test_fresh_resources_are_deleted_with_their_contents(aws):
    """What a run on an external emulator leaves behind: nothing."""
    from storemon_app.stack import destroy_stack

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=aws["DataBucket"], Key="incoming/status/x.csv", Body=b"x")
    destroy_stack(targets.NAMES_STAGE)
    assert aws["PollsTable"] not in boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]
    assert aws["DataBucket"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not boto3.client("sqs", region_name="us-east-1").list_queues(QueueNamePrefix=aws["IngestQueue"]).get("QueueUrls")
    destroy_stack(targets.NAMES_STAGE)  # twice is harmless
    assert StackApplier(targets.NAMES_STAGE).apply() == aws  # and the names can be used again at once


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
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain"), logical
        if resource["Type"] == "AWS::SQS::Queue":
            assert resource["DeletionPolicy"] == "Delete" and "MessageRetentionPeriod" in resource["Properties"]
