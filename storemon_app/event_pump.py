"""Deliver SQS messages to the app's queue handlers, as Lambda's event source mapping does.

For each ``@app.on_sqs_message`` handler: receive from its queue, invoke the
very same handler with a Lambda-shaped event, delete the message on success,
and leave it for redelivery on failure. As on Lambda, a failed message comes back only
when the queue's visibility timeout ends (never sooner: a local shortcut would hide
how long a lost or failing part really takes to be retried).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Optional

from chalicelib.aws import AwsClients

log = logging.getLogger("storemon.pump")


@dataclass(frozen=True)
class QueueMapping:
    queue: str
    handler_name: str
    handler: Callable[[dict, Any], Any]
    batch_size: int


class LambdaContext:
    """The parts of Lambda's context object handlers may look at."""

    def __init__(self, function_name: str, timeout_seconds: int = 900) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 1024
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def queue_mappings(app_module: ModuleType) -> list[QueueMapping]:
    """The SQS event sources the Chalice app declares, with their handlers."""
    mappings = []
    for source in app_module.app.event_sources:
        queue = getattr(source, "queue", None)
        if queue is None or not hasattr(source, "batch_size"):
            continue
        name = source.handler_string.split(".")[-1]
        mappings.append(QueueMapping(queue, name, getattr(app_module, name), source.batch_size))
    return mappings


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for m in messages]}


@dataclass
class InvocationStats:
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    #: CPU time of the invoking thread during invocations: the handler's own work.
    cpu_seconds: float = 0.0


class EventPump:
    """Poll every mapped queue with ``concurrency`` threads until stopped."""

    def __init__(self, app_module: ModuleType, concurrency: int = 2, wait_seconds: int = 1,
                 aws: Optional[AwsClients] = None) -> None:
        self.mappings = queue_mappings(app_module)
        self.aws = aws or AwsClients.from_env()
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds
        self.stats: dict[str, InvocationStats] = {m.handler_name: InvocationStats() for m in self.mappings}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def pump_once(self, mapping: QueueMapping) -> int:
        """Receive one batch from the mapping's queue and invoke its handler; returns messages seen."""
        url = self.aws.queue_url(mapping.queue)
        # Dead-letter queues are nearly always empty: a short poll keeps them from holding
        # up the busy queues this thread also serves.
        wait = 0 if mapping.queue.endswith("-dlq") else self.wait_seconds
        response = self.aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=mapping.batch_size, WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return 0
        attributes = self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arn = attributes["Attributes"]["QueueArn"]
        event = lambda_sqs_event(messages, arn, self.aws.sqs.meta.region_name)
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            mapping.handler(event, LambdaContext(mapping.handler_name))
        except Exception:
            log.exception("%s failed; its message(s) come back after the queue's visibility timeout",
                          mapping.handler_name)
            self._record(mapping, ok=False, seconds=time.perf_counter() - started,
                         cpu=time.thread_time() - cpu_started)
        else:
            self._record(mapping, ok=True, seconds=time.perf_counter() - started,
                         cpu=time.thread_time() - cpu_started)
            self.aws.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)

    def _record(self, mapping: QueueMapping, ok: bool, seconds: float, cpu: float) -> None:
        with self._lock:
            stats = self.stats[mapping.handler_name]
            if ok:
                stats.succeeded += 1
            else:
                stats.failed += 1
            stats.seconds += seconds
            stats.cpu_seconds += cpu
            stats.max_seconds = max(stats.max_seconds, seconds)

    def _loop(self) -> None:
        while not self._stop.is_set():
            idle = True
            for mapping in self.mappings:
                if self._stop.is_set():
                    break
                try:
                    if self.pump_once(mapping):
                        idle = False
                except Exception:  # the emulator went away or similar: say so, keep going
                    log.exception("polling %s failed", mapping.queue)
                    time.sleep(1)
            if idle:
                self._stop.wait(0.05)

    def start(self) -> "EventPump":
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"event-pump-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: Optional[float] = 30) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
