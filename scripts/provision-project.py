#!/usr/bin/env python3
"""Create in the local emulators what a project's deploy.toml names, so that its first
`deploy release` has somewhere to go.

The configuration is read through `deploy validate --output json` (placeholders expanded,
overrides merged, exactly as deploy sees it). For each environment asked for it creates, when
missing:

- the state bucket, with versioning;
- images: the ECR repository; for ECS rollouts the cluster, a task-definition family for the
  service (named after it, with the configured container) and the service on it; for
  `task-definitions` every family (and the cluster, when one is named); the `pre_deploy`
  family of a migration;
- DAG folders: the bucket, with versioning;
- Lambda functions: an execution role, the function (Python, a placeholder handler that the
  first release replaces) and the artifact bucket, when one is named.

What the emulators cannot hold (CodeDeploy applications and deployment groups, EventBridge
rules and schedules) is listed as not provisioned. Rerunning changes nothing that exists.

Endpoint: AWS_ENDPOINT_URL (required; `. .emulators/env` sets it). Only loopback endpoints are
accepted: this script is for emulators, never for an AWS account.

    . .emulators/env
    python3 scripts/provision-project.py --config deploy.toml --environments dev

Needs: boto3 (the emulators' Python environment has it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from urllib.parse import urlparse

try:
    import boto3
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"provision-project: missing Python package ({exc.name}); run `bash scripts/emulators.sh install`")

PLACEHOLDER_IMAGE = "public.ecr.aws/docker/library/busybox:stable"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def say(verb: str, what: str) -> None:
    print(f"  {verb:<15} {what}", flush=True)


def resolved(config: str, deploy: str) -> dict:
    """The configuration as deploy resolves it."""
    out = subprocess.run([deploy, "--config", config, "--output", "json", "validate"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"provision-project: `deploy validate` refused {config}:\n{out.stderr.strip()}")
    return json.loads(out.stdout)


class Env:
    """The clients of one environment and what it creates."""

    def __init__(self, env: dict, endpoint: str) -> None:
        self.name = env["name"]
        self.region = env["region"]
        self.account = env["account"]
        self.state_bucket = env["state_bucket"]
        session = boto3.session.Session(region_name=self.region)
        self.client = lambda service: session.client(service, endpoint_url=endpoint)

    def bucket(self, name: str, versioned: bool = True) -> None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=name)
            say("exists", f"s3://{name}")
        except ClientError:
            kwargs = {"Bucket": name}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**kwargs)
            say("created", f"s3://{name}")
        if versioned and s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            say("versioning on", f"s3://{name}")

    def repository(self, name: str) -> None:
        ecr = self.client("ecr")
        try:
            ecr.create_repository(repositoryName=name)
            say("created", f"ECR repository {name}")
        except ClientError as err:
            if err.response["Error"]["Code"] != "RepositoryAlreadyExistsException":
                raise
            say("exists", f"ECR repository {name}")

    def cluster(self, name: str) -> None:
        ecs = self.client("ecs")
        active = [c for c in ecs.describe_clusters(clusters=[name]).get("clusters", []) if c.get("status") == "ACTIVE"]
        if active:
            say("exists", f"ECS cluster {name}")
            return
        ecs.create_cluster(clusterName=name)
        say("created", f"ECS cluster {name}")

    def family(self, family: str, container: str) -> str:
        """The latest revision of `family`, registered with `container` when there is none."""
        ecs = self.client("ecs")
        try:
            arn = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["taskDefinitionArn"]
            say("exists", f"task definition {family}")
            return arn
        except ClientError:
            pass
        out = ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": container, "image": PLACEHOLDER_IMAGE, "memory": 256, "essential": True}],
            requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        )
        say("registered", f"task definition {family} (container {container})")
        return out["taskDefinition"]["taskDefinitionArn"]

    def service(self, rollout: dict) -> None:
        cluster, name, container = rollout["cluster"], rollout["service"], rollout["container"]
        self.cluster(cluster)
        ecs = self.client("ecs")
        found = ecs.describe_services(cluster=cluster, services=[name]).get("services", [])
        if any(s.get("status") == "ACTIVE" for s in found):
            say("exists", f"ECS service {cluster}/{name}")
            return
        arn = self.family(name, container)
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=arn, desiredCount=1,
                           launchType="FARGATE")
        say("created", f"ECS service {cluster}/{name}")

    def function(self, spec: dict) -> None:
        name = spec["function"]
        client = self.client("lambda")
        try:
            client.get_function(FunctionName=name)
            say("exists", f"Lambda function {name}")
            return
        except ClientError:
            pass
        handler = spec.get("handler") or "main.handler"
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr(f"{module}.py", "def handler(event, context):\n    return 'placeholder'\n")
        client.create_function(FunctionName=name, Runtime="python3.12", Role=self.lambda_role(),
                               Handler=handler, Code={"ZipFile": code.getvalue()})
        say("created", f"Lambda function {name} (placeholder code; the first release replaces it)")

    def lambda_role(self) -> str:
        iam = self.client("iam")
        name = "deploy-local-lambda"
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError:
            return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]


def image(env: Env, spec: dict) -> None:
    env.repository(spec["repository"])
    rollout = spec.get("rollout") or {}
    strategy = rollout.get("strategy", "none")
    if strategy in ("ecs-rolling", "codedeploy-blue-green", "ecs-blue-green"):
        env.service(rollout)
    if strategy == "codedeploy-blue-green":
        say("not provisioned", f"CodeDeploy {rollout['application']}/{rollout['deployment_group']} "
                               "(the emulators have no CodeDeploy; the tests' double plays it)")
    if strategy == "task-definitions":
        if rollout.get("cluster"):
            env.cluster(rollout["cluster"])
        for family in rollout.get("families", []):
            env.family(family, rollout["container"])
        for rule in rollout.get("schedules", []) + rollout.get("scheduler_schedules", []):
            say("not provisioned", f"schedule {rule} (create it with its ECS target)")
    pre_deploy = rollout.get("pre_deploy")
    if pre_deploy:
        env.family(pre_deploy["task_definition"], rollout.get("container", "app"))


def provision(env: Env, artifacts: list[dict]) -> None:
    print(f"{env.name} (account {env.account}, {env.region})", flush=True)
    env.bucket(env.state_bucket)
    for artifact in artifacts:
        kind, spec = artifact["kind"], artifact["detail"]
        if kind == "image":
            image(env, spec)
        elif kind == "dags":
            env.bucket(spec["bucket"])
        elif kind == "lambda":
            env.function(spec)
            if spec.get("artifact_bucket"):
                env.bucket(spec["artifact_bucket"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="deploy.toml", help="the project's deploy.toml")
    parser.add_argument("--environments", default="", help="comma-separated (default: all)")
    parser.add_argument("--deploy", default=os.environ.get("DEPLOY_BIN") or shutil.which("deploy") or "deploy",
                        help="the deploy binary (default: $DEPLOY_BIN, else deploy on the PATH)")
    args = parser.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urlparse(endpoint).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("provision-project: AWS_ENDPOINT_URL must point at the local emulators "
                 "(`. .emulators/env`); this script never creates anything in an AWS account")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    config = resolved(args.config, args.deploy)
    wanted = [e for e in args.environments.split(",") if e]
    known = [e["name"] for e in config["environments"]]
    unknown = [e for e in wanted if e not in known]
    if unknown:
        sys.exit(f"provision-project: unknown environment(s) {', '.join(unknown)}; {args.config} has {', '.join(known)}")
    for env in config["environments"]:
        if wanted and env["name"] not in wanted:
            continue
        provision(Env(env, endpoint), env["artifacts"])


if __name__ == "__main__":
    main()
