#!/usr/bin/env python3
"""Create the example application's own resources in a local AWS emulator.

`deploy` changes what runs; it does not create the services it deploys to. A team keeps
those in its own infrastructure code. For the demo, this script plays that part for the
`planwise` example in each environment, against the emulator at AWS_ENDPOINT_URL:

- a VPC, a subnet and a security group for the tasks;
- the API: log group, database secret, task execution role, task definition
  `planwise-api-<env>` (container `api`), the migration family `planwise-migrate-<env>`,
  and the ECS service `api` (Fargate, two tasks) in cluster `planwise-<env>`: rolling in dev,
  under CodeDeploy in staging and prod, with its blue/green deployment group;
- the ETL jobs: log group, families `etl-daily-<env>` and `etl-backfill-<env>`
  (container `etl`), and the EventBridge rule `etl-nightly-<env>` whose ECS target runs
  `etl-daily-<env>` at a pinned revision;
- the resize function `planwise-resize-<env>` with a placeholder version 1 behind alias `live`.

Rerunning changes nothing that exists. Needs boto3.

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python3 examples/planwise/app.py dev staging prod
"""

from __future__ import annotations

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

PROJECT = "planwise"
REGION = os.environ.get("AWS_REGION", "eu-west-1")
PLACEHOLDER = "public.ecr.aws/nginx/nginx:1.27"


def exists(call, *codes: str) -> bool:
    """Runs `call`; False when AWS answers with one of `codes` (the object is missing)."""
    try:
        call()
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in codes:
            return False
        raise


class App:
    def __init__(self, env: str) -> None:
        session = boto3.session.Session(region_name=REGION)
        self.env = env
        self.ecs = session.client("ecs")
        self.logs = session.client("logs")
        self.secrets = session.client("secretsmanager")
        self.iam = session.client("iam")
        self.events = session.client("events")
        self.ec2 = session.client("ec2")
        self.account = session.client("sts").get_caller_identity()["Account"]

    def say(self, what: str) -> None:
        print(f"  {self.env}: {what}")

    def network(self) -> dict:
        """The awsvpc configuration of the environment's tasks: a VPC, a subnet and a security
        group tagged with the environment (created when missing)."""
        name = f"{PROJECT}-{self.env}"
        tagged = [{"Name": "tag:Name", "Values": [name]}]
        vpcs = self.ec2.describe_vpcs(Filters=tagged)["Vpcs"]
        if vpcs:
            vpc = vpcs[0]["VpcId"]
        else:
            vpc = self.ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
            # Tasks in awsvpc mode get a private DNS name only with DNS hostnames on.
            self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
            self.ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": name}])
            self.say(f"VPC {vpc}")
        subnets = self.ec2.describe_subnets(Filters=tagged)["Subnets"]
        if subnets:
            subnet = subnets[0]["SubnetId"]
        else:
            subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
            self.ec2.create_tags(Resources=[subnet], Tags=[{"Key": "Name", "Value": name}])
        groups = self.ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]
        if groups:
            group = groups[0]["GroupId"]
        else:
            group = self.ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
            self.ec2.create_tags(Resources=[group], Tags=[{"Key": "Name", "Value": name}])
        return {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}

    def log_group(self, name: str) -> None:
        found = self.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if not any(g["logGroupName"] == name for g in found):
            self.logs.create_log_group(logGroupName=name)
            self.say(f"log group {name}")

    def secret(self, name: str) -> None:
        if not exists(lambda: self.secrets.describe_secret(SecretId=name), "ResourceNotFoundException"):
            self.secrets.create_secret(Name=name, SecretString="postgres://demo@db/planwise")
            self.say(f"secret {name}")

    def role(self, name: str) -> str:
        if not exists(lambda: self.iam.get_role(RoleName=name), "NoSuchEntity"):
            trust = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }
            self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
            self.say(f"role {name}")
        return f"arn:aws:iam::{self.account}:role/{name}"

    def family(self, family: str, container: dict, role: str) -> str:
        """The family's latest revision, registered first when there is none."""
        found = self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        mine = [arn for arn in found if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        if mine:
            return sorted(mine, key=lambda a: int(a.rsplit(":", 1)[-1]))[-1]
        out = self.ecs.register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=role,
            containerDefinitions=[container],
            tags=[{"key": "Project", "value": PROJECT}, {"key": "Environment", "value": self.env}],
        )
        arn = out["taskDefinition"]["taskDefinitionArn"]
        self.say(f"task definition {arn.rsplit('/', 1)[-1]}")
        return arn

    def container(self, name: str, group: str, secrets: bool) -> dict:
        container = {
            "name": name,
            "image": PLACEHOLDER,
            "essential": True,
            "memory": 512,
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}] if name == "api" else [],
            "environment": [{"name": "LOG_LEVEL", "value": "debug"}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": group, "awslogs-region": REGION, "awslogs-stream-prefix": name},
            },
        }
        if secrets:
            arn = f"arn:aws:secretsmanager:{REGION}:{self.account}:secret:{PROJECT}/{self.env}/db"
            container["secrets"] = [{"name": "DATABASE_URL", "valueFrom": arn}]
        return container

    def service(self, cluster: str, name: str, task_definition: str, network: dict) -> None:
        """The API service: rolling in dev; under CodeDeploy's control behind a load balancer's
        blue target group in staging and prod (the example deploys those blue/green)."""
        found = self.ecs.describe_services(cluster=cluster, services=[name])["services"]
        if any(s.get("status") == "ACTIVE" for s in found):
            return
        extra = {}
        if self.env != "dev":
            extra = {
                "deploymentController": {"type": "CODE_DEPLOY"},
                "loadBalancers": [{
                    "targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{self.account}:"
                                      f"targetgroup/{PROJECT}-api-{self.env}-blue/0123456789abcdef",
                    "containerName": "api",
                    "containerPort": 8080,
                }],
            }
        self.ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=task_definition,
            desiredCount=2,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": network},
            **extra,
        )
        self.say(f"service {cluster}/{name}")

    def deployment_group(self, cluster: str) -> None:
        """The API's CodeDeploy deployment group, as infra/ creates it with
        CreateDeploymentGroup=true once the service exists: blue/green with traffic control,
        automatic rollback on failure and on stop."""
        codedeploy = boto3.session.Session(region_name=REGION).client("codedeploy")
        application = f"{PROJECT}-api-{self.env}"
        if exists(lambda: codedeploy.get_deployment_group(applicationName=application, deploymentGroupName="api"),
                  "DeploymentGroupDoesNotExistException"):
            return
        codedeploy.create_deployment_group(
            applicationName=application,
            deploymentGroupName="api",
            serviceRoleArn=f"arn:aws:iam::{self.account}:role/{PROJECT}-codedeploy-{self.env}",
            deploymentConfigName="CodeDeployDefault.ECSAllAtOnce",
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            blueGreenDeploymentConfiguration={
                "deploymentReadyOption": {"actionOnTimeout": "CONTINUE_DEPLOYMENT"},
                "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE", "terminationWaitTimeInMinutes": 5},
            },
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]},
            ecsServices=[{"serviceName": "api", "clusterName": cluster}],
            loadBalancerInfo={"targetGroupPairInfoList": [{
                "targetGroups": [{"name": f"{PROJECT}-api-{self.env}-blue"}, {"name": f"{PROJECT}-api-{self.env}-green"}],
                "prodTrafficRoute": {"listenerArns": [
                    f"arn:aws:elasticloadbalancing:{REGION}:{self.account}:listener/app/{PROJECT}-{self.env}/1/2"]},
            }]},
        )
        self.say(f"CodeDeploy deployment group {application}/api")

    def nightly(self, rule: str, cluster: str, task_definition: str, role: str, network: dict) -> None:
        if exists(lambda: self.events.describe_rule(Name=rule), "ResourceNotFoundException"):
            return
        self.events.put_rule(Name=rule, ScheduleExpression="cron(0 3 * * ? *)")
        self.events.put_targets(Rule=rule, Targets=[{
            "Id": "etl-daily",
            "Arn": f"arn:aws:ecs:{REGION}:{self.account}:cluster/{cluster}",
            "RoleArn": role,
            "EcsParameters": {
                "TaskDefinitionArn": task_definition,
                "TaskCount": 1,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": {"awsvpcConfiguration": {
                    "Subnets": network["subnets"], "SecurityGroups": network["securityGroups"],
                    "AssignPublicIp": "DISABLED"}},
            },
        }])
        self.say(f"EventBridge rule {rule} -> {task_definition.rsplit('/', 1)[-1]}")

    def function(self, name: str, role: str) -> None:
        """The resize function with a placeholder zip, version 1 and the alias `live` on it
        (deploy publishes the real code and moves the alias)."""
        lam = boto3.session.Session(region_name=REGION).client("lambda")
        if exists(lambda: lam.get_function(FunctionName=name), "ResourceNotFoundException"):
            return
        import io
        import zipfile
        placeholder = io.BytesIO()
        with zipfile.ZipFile(placeholder, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": placeholder.getvalue()},
            Publish=True,
        )
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        self.say(f"Lambda function {name} (version 1, alias live)")

    def create(self) -> None:
        env, cluster = self.env, f"{PROJECT}-{self.env}"
        api_logs, etl_logs = f"/{PROJECT}/api-{env}", f"/{PROJECT}/etl-{env}"
        self.log_group(api_logs)
        self.log_group(etl_logs)
        self.secret(f"{PROJECT}/{env}/db")
        role = self.role(f"{PROJECT}-{env}-task-execution")
        api = self.family(f"{PROJECT}-api-{env}", self.container("api", api_logs, True), role)
        self.family(f"{PROJECT}-migrate-{env}", self.container("api", api_logs, True), role)
        network = self.network()
        self.service(cluster, "api", api, network)
        if env != "dev":
            self.deployment_group(cluster)
        daily = self.family(f"etl-daily-{env}", self.container("etl", etl_logs, False), role)
        self.family(f"etl-backfill-{env}", self.container("etl", etl_logs, False), role)
        self.nightly(f"etl-nightly-{env}", cluster, daily, role, network)
        self.function(f"{PROJECT}-resize-{env}", role)


def main() -> int:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print("app.py: AWS_ENDPOINT_URL is not set; this script only targets a local emulator",
              file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    envs = sys.argv[1:] or ["dev", "staging", "prod"]
    print(f"the example application's own resources in {', '.join(envs)}")
    for env in envs:
        App(env).create()
    return 0


if __name__ == "__main__":
    sys.exit(main())
