"""infra/resources.json is the one definition: the stage config must name exactly its resources."""
from __future__ import annotations

import json

import boto3
import pytest

from storemon_app.runtime import PROJECT_ROOT, stage_environment
from storemon_app.stack import StackApplier, TemplateError, load_template

NAME_VARIABLES = {
    "POLLS_TABLE": "PollsTable", "BUSINESS_HOURS_TABLE": "BusinessHoursTable", "TIMEZONES_TABLE": "TimezonesTable",
    "REPORT_JOBS_TABLE": "ReportJobsTable", "INGESTIONS_TABLE": "IngestionsTable",
    "DATASET_STATE_TABLE": "DatasetStateTable", "DATA_BUCKET": "DataBucket", "REPORT_QUEUE": "ReportQueue",
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
    assert StackApplier("dev").apply() == aws


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
