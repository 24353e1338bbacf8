"""Create the resources of ``infra/resources.json`` on an emulator (moto server, LocalStack).

Production deploys that template with CloudFormation. The emulators' own
CloudFormation drops properties we rely on (TTL, bucket notifications), so
this applies the same template resource by resource through the service
APIs. It knows exactly the resource types and properties the template uses
and refuses anything else, so the two can never silently drift apart.
"""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from storemon_app.paths import TEMPLATE_PATH


#: moto's default account; only a fallback when the emulator cannot say (LocalStack uses 000000000000).
ACCOUNT_ID = "123456789012"
#: What emulators answer to UpdateTimeToLive when they lack it (dynalite). Expiry is a cost
#: measure, not a rule the report depends on, so the stack is usable without it.
TTL_UNSUPPORTED = {"UnknownOperationException", "NotImplementedError", "InvalidAction"}

log = logging.getLogger("storemon.stack")


#: Resources that only exist around a deployed API and its alarms: the API key, usage plan
#: and throttling, API Gateway's own error responses, CloudWatch alarms. Locally there is
#: no API Gateway (``chalice local`` serves the app; the app itself checks the key when
#: ``STOREMON_API_KEY`` is set), so the applier skips exactly these types, by name.
DEPLOYED_ONLY_TYPES = frozenset({
    "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApiGateway::GatewayResponse", "AWS::CloudWatch::Alarm",
})


class TemplateError(Exception):
    """The template uses something this applier does not know how to create."""


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


class StackApplier:
    def __init__(self, stage: str, region: str = "us-east-1", template: dict[str, Any] | None = None) -> None:
        self.template = template or load_template()
        self.stage = stage
        self.region = region
        self.names: dict[str, str] = {}  # logical id -> physical name
        self.arns: dict[str, str] = {}
        self.queue_urls: dict[str, str] = {}
        self._account_id: str | None = None
        self.partition = boto3.session.Session().get_partition_for_region(region)
        self.dynamodb = boto3.client("dynamodb", region_name=region)
        self.sqs = boto3.client("sqs", region_name=region)
        self.s3 = boto3.client("s3", region_name=region, config=Config(s3={"addressing_style": "path"}))

    # -- intrinsic functions -------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._variable(m.group(1)), arg)
            if fn == "Ref":
                return self._variable(arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg
                if attribute != "Arn":
                    raise TemplateError(f"Fn::GetAtt {logical}.{attribute} is not supported")
                return self.arns[logical]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _variable(self, name: str) -> str:
        if name == "Stage":
            return self.stage
        if name == "AWS::Region":
            return self.region
        if name == "AWS::AccountId":
            return self.account_id()
        if name == "AWS::Partition":
            return self.partition
        if name in self.queue_urls:  # Ref of a queue is its URL
            return self.queue_urls[name]
        if name in self.names:
            return self.names[name]
        raise TemplateError(f"unknown reference {name!r}")

    def account_id(self) -> str:
        """The emulator's account (LocalStack: 000000000000, moto: 123456789012), from a queue's
        ARN (the queues and the bucket notifying them are where the account matters), else STS,
        else moto's default."""
        if self._account_id is None:
            if self.queue_urls:
                self._account_id = self.arns[next(iter(self.queue_urls))].split(":")[4]
            else:
                try:
                    sts = boto3.client("sts", region_name=self.region)
                    self._account_id = sts.get_caller_identity()["Account"]
                except Exception:  # an emulator without STS
                    self._account_id = ACCOUNT_ID
        return self._account_id

    # -- resources -------------------------------------------------------------
    def _creators(self) -> dict[str, tuple[Callable[[str, dict[str, Any]], None], set[str]]]:
        """Resource type -> (creator, the properties it understands)."""
        return {
            "AWS::DynamoDB::Table": (self._table, {"TableName", "BillingMode", "AttributeDefinitions",
                                                   "KeySchema", "TimeToLiveSpecification"}),
            "AWS::SQS::Queue": (self._queue, {"QueueName", "VisibilityTimeout", "MessageRetentionPeriod",
                                              "RedrivePolicy"}),
            "AWS::SQS::QueuePolicy": (self._queue_policy, {"Queues", "PolicyDocument"}),
            "AWS::S3::Bucket": (self._bucket, {"BucketName", "NotificationConfiguration",
                                               "LifecycleConfiguration", "VersioningConfiguration"}),
        }

    def validate(self) -> list[tuple[str, dict[str, Any]]]:
        """Refuse, before creating anything, what this applier cannot reproduce faithfully."""
        creators = self._creators()
        ordered = [(logical, resource) for logical, resource in self._ordered_resources()
                   if resource["Type"] not in DEPLOYED_ONLY_TYPES]
        for logical, resource in ordered:
            if resource["Type"] not in creators:
                raise TemplateError(f"{logical}: resource type {resource['Type']} is not supported")
            unknown = set(resource.get("Properties", {})) - creators[resource["Type"]][1]
            if unknown:
                raise TemplateError(f"{logical}: properties {sorted(unknown)} are not supported "
                                    "by the local applier")
        return ordered

    def apply(self) -> dict[str, str]:
        """Create every resource (in dependency order); existing ones are left as they are."""
        creators = self._creators()
        for logical, resource in self.validate():
            creators[resource["Type"]][0](logical, resource.get("Properties", {}))
        return dict(self.names)

    def _ordered_resources(self) -> list[tuple[str, dict[str, Any]]]:
        resources = self.template["Resources"]
        done: list[str] = []

        def visit(logical: str, trail: tuple[str, ...] = ()) -> None:
            if logical in done:
                return
            if logical in trail:
                raise TemplateError(f"dependency cycle through {logical}")
            for dependency in sorted(_dependencies(resources[logical]) & set(resources)):
                visit(dependency, trail + (logical,))
            done.append(logical)

        for logical in resources:
            visit(logical)
        return [(logical, resources[logical]) for logical in done]

    def _table(self, logical: str, props: dict[str, Any]) -> None:
        name = self.resolve(props["TableName"])
        try:
            self.dynamodb.create_table(TableName=name, BillingMode=props["BillingMode"],
                                       AttributeDefinitions=props["AttributeDefinitions"],
                                       KeySchema=props["KeySchema"])
            self.dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            try:
                self.dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code in TTL_UNSUPPORTED:
                    log.warning("%s: this emulator has no TTL (%s); items will not expire", name, code)
                elif code != "ValidationException":  # already enabled
                    raise
        self.names[logical] = name
        self.arns[logical] = self.dynamodb.describe_table(TableName=name)["Table"]["TableArn"]

    def _queue(self, logical: str, props: dict[str, Any]) -> None:
        name = self.resolve(props["QueueName"])
        attributes = {}
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
        if "MessageRetentionPeriod" in props:
            attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(self.resolve(props["RedrivePolicy"]))
        url = self._create_queue(name, attributes)
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arn = attributes["Attributes"]["QueueArn"]
        self.names[logical], self.arns[logical], self.queue_urls[logical] = name, arn, url

    def _create_queue(self, name: str, attributes: dict[str, str], patience: float = 70.0) -> str:
        """AWS refuses a queue name for 60 s after that queue was deleted (a test run's cleanup)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            except ClientError as error:
                recently_deleted = "QueueDeletedRecently" in error.response["Error"]["Code"]
                if not recently_deleted or time.monotonic() > deadline:
                    raise
                time.sleep(5)

    def destroy(self) -> None:
        """Delete every resource of the template that exists (a test run's fresh resources
        on an external emulator); data first, so buckets and tables can go."""
        for _logical, resource in reversed(self.validate()):
            props = resource.get("Properties", {})
            kind = resource["Type"]
            try:
                if kind == "AWS::DynamoDB::Table":
                    name = self.resolve(props["TableName"])
                    self.dynamodb.delete_table(TableName=name)
                    self.dynamodb.get_waiter("table_not_exists").wait(TableName=name,
                                                                      WaiterConfig={"Delay": 1})
                elif kind == "AWS::SQS::Queue":
                    url = self.sqs.get_queue_url(QueueName=self.resolve(props["QueueName"]))["QueueUrl"]
                    self.sqs.delete_queue(QueueUrl=url)
                elif kind == "AWS::S3::Bucket":
                    self._empty_and_delete_bucket(self.resolve(props["BucketName"]))
            except ClientError as error:
                if error.response["Error"]["Code"] not in ("ResourceNotFoundException", "NoSuchBucket",
                                                           "AWS.SimpleQueueService.NonExistentQueue",
                                                           "QueueDoesNotExist"):
                    raise

    def _empty_and_delete_bucket(self, name: str) -> None:
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(doomed), 1000):
                self.s3.delete_objects(Bucket=name,
                                       Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
        self.s3.delete_bucket(Bucket=name)

    def _queue_policy(self, logical: str, props: dict[str, Any]) -> None:
        policy = json.dumps(self.resolve(props["PolicyDocument"]))
        for url in self.resolve(props["Queues"]):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
        self.names[logical] = logical

    def _bucket(self, logical: str, props: dict[str, Any]) -> None:
        name = self.resolve(props["BucketName"])
        try:
            if self.region == "us-east-1":
                self.s3.create_bucket(Bucket=name)
            else:
                self.s3.create_bucket(Bucket=name,
                                      CreateBucketConfiguration={"LocationConstraint": self.region})
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        self.names[logical] = name
        self.arns[logical] = f"arn:{self.partition}:s3:::{name}"
        versioning = props.get("VersioningConfiguration")
        if versioning:
            self.s3.put_bucket_versioning(Bucket=name,
                                          VersioningConfiguration={"Status": versioning["Status"]})
        notification = props.get("NotificationConfiguration")
        if notification:
            queues = [_queue_notification(entry)
                      for entry in self.resolve(notification.get("QueueConfigurations", []))]
            self.s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": queues})
        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle:
            rules = [_lifecycle_rule(logical, rule) for rule in lifecycle["Rules"]]
            self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})


def _queue_notification(entry: dict[str, Any]) -> dict[str, Any]:
    """A template's QueueConfigurations entry in the shape of S3's API."""
    config: dict[str, Any] = {"QueueArn": entry["Queue"], "Events": [entry["Event"]]}
    if "Filter" in entry:
        config["Filter"] = {"Key": {"FilterRules": entry["Filter"]["S3Key"]["Rules"]}}
    return config


#: What the applier reproduces of a lifecycle rule; anything else is refused.
LIFECYCLE_RULE_PROPERTIES = frozenset({"Id", "Status", "Prefix", "ExpirationInDays",
                                       "NoncurrentVersionExpirationInDays"})


def _lifecycle_rule(logical: str, rule: dict[str, Any]) -> dict[str, Any]:
    """A template's lifecycle rule in the shape of S3's API; unknown properties are refused."""
    unknown = set(rule) - LIFECYCLE_RULE_PROPERTIES
    if unknown:
        raise TemplateError(f"{logical}: lifecycle rule properties {sorted(unknown)} are not supported")
    entry: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"],
                             "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        entry["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "NoncurrentVersionExpirationInDays" in rule:
        entry["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
    return entry

def _dependencies(node: Any) -> set[str]:
    """Logical ids a resource refers to (Ref, Fn::GetAtt, DependsOn)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "DependsOn":
                found.update([value] if isinstance(value, str) else value)
            else:
                found |= _dependencies(value)
    elif isinstance(node, list):
        for value in node:
            found |= _dependencies(value)
    return found


def apply_stack(stage: str, region: str = "us-east-1") -> dict[str, str]:
    """Create the stage's resources on whatever endpoint boto3 is pointed at."""
    return StackApplier(stage, region).apply()


def destroy_stack(stage: str, region: str = "us-east-1") -> None:
    """Delete the stage's resources, contents included, wherever boto3 is pointed."""
    StackApplier(stage, region).destroy()
