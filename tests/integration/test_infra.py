"""infra/resources.json applied on an emulator: TTL, notifications, ARNs, and fresh resources that
go with their contents (the template read as a file: tests/unit/test_template.py)."""
from __future__ import annotations

import json

import boto3

from storemon_app.stack import StackApplier
from tests import targets


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
    assert len(warnings) == 2  # polls, report jobs
    assert "has no TTL (UnknownOperationException)" in warnings[0]


def test_arns_account_and_partition_come_from_the_emulator(aws):
    """LocalStack's account is 000000000000 and DynamoDB Local's ARNs name its own region:
    nothing may assume moto's 123456789012."""
    applier = StackApplier(targets.NAMES_STAGE)
    applier.apply()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = dynamodb.describe_table(TableName=aws["PollsTable"])["Table"]
    assert applier.arns["PollsTable"] == table["TableArn"]
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
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    assert aws["PollsTable"] not in dynamodb.list_tables()["TableNames"]
    assert aws["DataBucket"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not sqs.list_queues(QueueNamePrefix=aws["IngestQueue"]).get("QueueUrls")
    destroy_stack(targets.NAMES_STAGE)  # twice is harmless
    assert StackApplier(targets.NAMES_STAGE).apply() == aws  # and the names can be used again at once
