"""``./storemon package``: the deployable CloudFormation template, checked.

``chalice package`` writes the functions and the API; ``infra/resources.json``
(the tables, queues and bucket) is merged in. Chalice names the queues of the
SQS event sources by ARN strings, which CloudFormation cannot order against the
template's own queues (a first deploy could create the event source mappings
before their queues exist), so each such ARN is replaced by ``Fn::GetAtt`` of
the queue the template defines with that name; a handler bound to a queue the
template lacks is an error. The Stage parameter defaults to the packaged stage.
Then cfn-lint, informational checks included: any finding fails the package.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from storemon_app.paths import PROJECT_ROOT, TEMPLATE_PATH

DEFAULT_REGION = "us-east-1"


class PackagingError(Exception):
    """The package could not be made, or does not pass the checks."""


def _queue_names(template: dict[str, Any], stage: str) -> dict[str, str]:
    """Physical queue name -> logical id of the template's queues for ``stage``."""
    names = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::SQS::Queue":
            name = resource["Properties"]["QueueName"]
            if isinstance(name, dict):
                name = name["Fn::Sub"].replace("${Stage}", stage)
            names[name] = logical
    return names


def link_event_sources(template: dict[str, Any], stage: str) -> list[str]:
    """Point every SQS event source at its queue with ``Fn::GetAtt`` (an explicit dependency);
    returns the queues linked. Modifies ``template``."""
    queues = _queue_names(template, stage)
    linked = []
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "SQS":
                continue
            queue = event["Properties"]["Queue"]
            arn = queue.get("Fn::Sub") if isinstance(queue, dict) else queue
            if not isinstance(arn, str):
                continue  # already a reference
            name = re.sub(r"^.*:", "", arn)
            if name not in queues:
                raise PackagingError(f"{logical}.{event_name} listens to queue {name!r}, "
                                     f"which infra/resources.json does not define")
            event["Properties"]["Queue"] = {"Fn::GetAtt": [queues[name], "Arn"]}
            linked.append(queues[name])
    return linked


def package(stage: str, out: Path) -> Path:
    """chalice package + merge + links; returns the template's path."""
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or DEFAULT_REGION)  # chalice insists on one
    for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL")]:
        del env[name]
    if out.exists():
        shutil.rmtree(out)
    chalice = Path(sys.executable).with_name("chalice")
    command = [str(chalice)] if chalice.exists() else [sys.executable, "-m", "chalice.cli"]
    done = subprocess.run(command + ["package", "--stage", stage, "--pkg-format", "cloudformation",
                                     "--merge-template", str(TEMPLATE_PATH), str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise PackagingError(f"chalice package failed:\n{done.stdout}{done.stderr}")
    path = out / "sam.json"
    template = json.loads(path.read_text())
    linked = link_event_sources(template, stage)
    if not linked:
        raise PackagingError("no SQS event source found in the package; did chalice change its output?")
    template["Parameters"]["Stage"]["Default"] = stage
    path.write_text(json.dumps(template, indent=2) + "\n")
    return path


def lint(path: Path) -> list[str]:
    """cfn-lint's findings (errors, warnings and informational), one string each."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    done = subprocess.run(command + ["--include-checks", "I", "--format", "parseable", "--", str(path)],
                          capture_output=True, text=True)
    findings = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 and not findings:
        raise PackagingError(f"cfn-lint failed to run: {done.stderr.strip()}")
    return findings


def cmd_package(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        path = package(args.stage, out)
        findings = lint(path)
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if findings:
        print("\n".join(findings))
        print(f"error: cfn-lint found {len(findings)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"{path}: stage {args.stage}, cfn-lint clean (errors, warnings and informational checks); "
          f"code {out / 'deployment.zip'}")
    return 0


def register_commands(commands: Any) -> None:
    package_parser = commands.add_parser(
        "package", help="the CloudFormation template to deploy (chalice package + infra/resources.json), "
                        "checked with cfn-lint")
    package_parser.add_argument("--stage", default="prod",
                                help="stage of .chalice/config.json (default: prod)")
    package_parser.add_argument("--out", default="build", help="directory for sam.json and deployment.zip "
                                                                "(default: build; emptied first)")
    package_parser.set_defaults(func=cmd_package)
