#!/usr/bin/env python3
"""Provision the example environments into a local AWS emulator (moto server).

For every environment this creates the CloudFormation stack from
infra/environment.yaml (parameters from infra/parameters/<env>.json), waits for
CREATE_COMPLETE, then checks every resource of the template against the
emulator's APIs. Whatever the emulator's CloudFormation did not create or did
not configure (see infra/README.md, "Local emulators") is created or
configured directly with the service API, and each such step is printed with
the word "direct". Finally the stack outputs are printed, resolved.

Rerunning is safe: an existing stack is kept (or updated with --update) and
the checks only change what differs from the template.

Endpoint: AWS_ENDPOINT_URL (required, e.g. http://127.0.0.1:5000).
Credentials: dummies are filled in when none are set (testing/testing).

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python3 scripts/provision.py
    python3 scripts/provision.py --environments dev --project planwise

Needs: boto3, PyYAML.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

try:
    import boto3
    import yaml
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"provision: missing Python package ({exc.name}); pip install boto3 pyyaml")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "infra" / "environment.yaml"
DEFAULT_PARAMETERS_DIR = ROOT / "infra" / "parameters"
ENVIRONMENTS = ("dev", "staging", "prod")
OK_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


# --------------------------------------------------------------------------
# Template loading: CloudFormation YAML with short-form intrinsic functions.
# --------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def parse_template(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


# --------------------------------------------------------------------------
# A small renderer: resolves the template the way CloudFormation would, for
# the functions and attributes this template uses.
# --------------------------------------------------------------------------
NO_VALUE = object()

NAME_PROPERTY = {
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::CodeDeploy::Application": "ApplicationName",
    "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
    "AWS::IAM::Role": "RoleName",
}


class Renderer:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        region: str,
        account: str,
        stack_name: str,
        physical_ids: dict[str, str],
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.region = region
        self.account = account
        self.partition = "aws"
        self.stack_name = stack_name
        self.physical_ids = physical_ids
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            raw = parameters.get(name, spec.get("Default"))
            if raw is None:
                raise SystemExit(f"provision: parameter {name} has no value")
            raw = str(raw)
            if spec.get("Type") == "CommaDelimitedList":
                self.params[name] = [p.strip() for p in raw.split(",")]
            else:
                self.params[name] = raw
        self._conditions: dict[str, bool] = {}

    # conditions ----------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._eval_condition(self.template["Conditions"][name]))
        return self._conditions[name]

    def _eval_condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self._eval_condition(arg[0])
            if key == "Fn::And":
                return all(self._eval_condition(a) for a in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(a) for a in arg)
        return self.resolve(node)

    def enabled(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # references ------------------------------------------------------------
    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        res = self.resources[name]
        rtype = res["Type"]
        if rtype in NAME_PROPERTY:
            return self.resolve(res["Properties"][NAME_PROPERTY[rtype]])
        if rtype == "AWS::IAM::OIDCProvider":
            host = re.sub(r"^https://", "", self.resolve(res["Properties"]["Url"]))
            return f"arn:{self.partition}:iam::{self.account}:oidc-provider/{host}"
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise KeyError(f"cannot resolve Ref {name} ({rtype})")

    def get_att(self, name: str, attr: str) -> str:
        rtype = self.resources[name]["Type"]
        ident = self.ref(name)
        p, r, a = self.partition, self.region, self.account
        table: dict[tuple[str, str], Callable[[], str]] = {
            ("AWS::ECR::Repository", "Arn"): lambda: f"arn:{p}:ecr:{r}:{a}:repository/{ident}",
            ("AWS::ECR::Repository", "RepositoryUri"): lambda: f"{a}.dkr.ecr.{r}.amazonaws.com/{ident}",
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:{p}:s3:::{ident}",
            ("AWS::ECS::Cluster", "Arn"): lambda: f"arn:{p}:ecs:{r}:{a}:cluster/{ident}",
            ("AWS::IAM::Role", "Arn"): lambda: f"arn:{p}:iam::{a}:role/{ident}",
        }
        return table[(rtype, attr)]()

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def repl(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                res, attr = expr.split(".", 1)
                return self.get_att(res, attr)
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    # generic resolution -------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                variables = {k: self.resolve(v) for k, v in arg[1].items()}
                return self.sub(arg[0], variables)
            if key == "Fn::If":
                branch = arg[1] if self.condition(arg[0]) else arg[2]
                return self.resolve(branch)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(x) for x in self.resolve(arg[1]))
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._eval_condition(node)
        out = {}
        for k, v in node.items():
            rv = self.resolve(v)
            if rv is not NO_VALUE:
                out[k] = rv
        return out

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    def outputs(self) -> dict[str, Any]:
        result = {}
        for key, spec in self.template.get("Outputs", {}).items():
            cond = spec.get("Condition")
            if cond and not self.condition(cond):
                continue
            result[key] = self.resolve(spec["Value"])
        return result


# --------------------------------------------------------------------------
# Reconciliation: compare each resource with the emulator; fix differences.
# --------------------------------------------------------------------------
def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def tag_dict(tags: list[dict[str, str]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {t[key]: t[value] for t in (tags or [])}


def canonical(doc: Any) -> Any:
    """Policy documents compare equal regardless of list/scalar spelling of Action/Resource."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return doc
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in ("Action", "Resource", "NotAction", "NotResource") and isinstance(v, str):
                v = [v]
            out[k] = canonical(v)
        return out
    if isinstance(doc, list):
        return [canonical(x) for x in doc]
    return doc


# Outcome of trying a bucket policy on a scratch bucket, shared by all environments of a run.
POLICY_TRIALS: dict[str, str | None] = {}


class Reconciler:
    def __init__(self, clients: Callable[[str], Any], renderer: Renderer, say: Callable[[str], None],
                 bucket_policies: bool) -> None:
        self.client = clients
        self.r = renderer
        self.say = say
        self.bucket_policies = bucket_policies
        self.direct: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []
        self.failed: list[str] = []
        self._policy_trials = POLICY_TRIALS

    def did(self, logical_id: str, what: str) -> None:
        rtype = self.r.resources[logical_id]["Type"]
        self.direct.append((rtype, what.split(";")[0]))
        self.say(f"    direct: {what}")

    def skip(self, logical_id: str, what: str, summary: str) -> None:
        rtype = self.r.resources[logical_id]["Type"]
        self.skipped.append((rtype, summary))
        self.say(f"    skipped: {what}")

    def run(self) -> None:
        handlers = {
            "AWS::IAM::OIDCProvider": self.oidc_provider,
            "AWS::ECR::Repository": self.ecr_repository,
            "AWS::S3::Bucket": self.s3_bucket,
            "AWS::S3::BucketPolicy": self.s3_bucket_policy,
            "AWS::ECS::Cluster": self.ecs_cluster,
            "AWS::CodeDeploy::Application": self.codedeploy_application,
            "AWS::IAM::Role": self.iam_role,
            "AWS::CodeDeploy::DeploymentGroup": self.codedeploy_deployment_group,
        }
        order = list(handlers)
        resources = self.r.resources
        for rtype in order:
            for logical_id, res in resources.items():
                if res["Type"] != rtype:
                    continue
                if not self.r.enabled(logical_id):
                    self.say(f"  {logical_id} ({rtype}): not part of this stack "
                             f"(condition {res['Condition']} is false)")
                    continue
                try:
                    name = str(self.r.ref(logical_id))
                except KeyError:
                    name = ""
                self.say(f"  {logical_id} ({rtype}) {name}".rstrip())
                try:
                    handlers[rtype](logical_id, name, self.r.properties(logical_id))
                except (ClientError, BotoCoreError) as exc:
                    self.failed.append(f"{logical_id}: {exc}")
                    self.say(f"    error: {exc}")
        for logical_id, res in resources.items():
            if res["Type"] not in handlers:
                self.say(f"  {logical_id} ({res['Type']}): not checked by this script")

    # IAM OIDC provider ------------------------------------------------------
    def oidc_provider(self, lid: str, arn: str, props: dict[str, Any]) -> None:
        iam = self.client("iam")
        arns = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
        if arn in arns:
            return
        kwargs: dict[str, Any] = {"Url": props["Url"], "ClientIDList": props.get("ClientIdList", [])}
        if props.get("ThumbprintList"):
            kwargs["ThumbprintList"] = props["ThumbprintList"]
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        iam.create_open_id_connect_provider(**kwargs)
        self.did(lid, "OIDC provider not created by CloudFormation; created with CreateOpenIDConnectProvider")

    # ECR ----------------------------------------------------------------------
    def ecr_repository(self, lid: str, name: str, props: dict[str, Any]) -> None:
        ecr = self.client("ecr")
        scan = bool(props.get("ImageScanningConfiguration", {}).get("ScanOnPush", False))
        mutability = props.get("ImageTagMutability", "MUTABLE")
        encryption = {"encryptionType": props.get("EncryptionConfiguration", {}).get("EncryptionType", "AES256")}
        kms = props.get("EncryptionConfiguration", {}).get("KmsKey")
        if kms:
            encryption["kmsKey"] = kms
        tags = props.get("Tags", [])

        def create(reason: str) -> None:
            ecr.create_repository(
                repositoryName=name,
                imageTagMutability=mutability,
                imageScanningConfiguration={"scanOnPush": scan},
                encryptionConfiguration=encryption,
                tags=tags,
            )
            self.did(lid, reason)

        try:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
            create("repository not created by CloudFormation; created with CreateRepository")
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]

        if bool(repo.get("imageScanningConfiguration", {}).get("scanOnPush", False)) != scan:
            ecr.put_image_scanning_configuration(repositoryName=name, imageScanningConfiguration={"scanOnPush": scan})
            self.did(lid, f"ImageScanningConfiguration not applied by CloudFormation; "
                          f"PutImageScanningConfiguration(scanOnPush={str(scan).lower()})")
        if repo.get("imageTagMutability") != mutability:
            ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability=mutability)
            self.did(lid, f"ImageTagMutability not applied by CloudFormation; PutImageTagMutability({mutability})")

        wanted_policy = props.get("LifecyclePolicy", {}).get("LifecyclePolicyText")
        if wanted_policy:
            try:
                current = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
            except ClientError as exc:
                if error_code(exc) != "LifecyclePolicyNotFoundException":
                    raise
                current = None
            if current is None or json.loads(current) != json.loads(wanted_policy):
                ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=wanted_policy)
                self.did(lid, "LifecyclePolicy not applied by CloudFormation; PutLifecyclePolicy")

        current_tags = tag_dict(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags"))
        if any(current_tags.get(k) != v for k, v in tag_dict(tags).items()):
            ecr.tag_resource(resourceArn=repo["repositoryArn"], tags=tags)
            self.did(lid, "Tags not applied by CloudFormation; TagResource")

        # Encryption cannot be changed in place: an empty repository is recreated.
        reported = repo.get("encryptionConfiguration", {})
        if reported.get("encryptionType") != encryption["encryptionType"]:
            if ecr.list_images(repositoryName=name).get("imageIds"):
                self.say(f"    warning: encryption reported as {reported} and the repository holds "
                         "images; left as is")
                return
            ecr.delete_repository(repositoryName=name)
            create(f"EncryptionConfiguration not applied by CloudFormation (reported {reported}); "
                   "the empty repository was recreated with CreateRepository, encryption "
                   f"{encryption['encryptionType']}")
            if wanted_policy:
                ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=wanted_policy)

    # S3 -----------------------------------------------------------------------
    def s3_bucket(self, lid: str, name: str, props: dict[str, Any]) -> None:
        s3 = self.client("s3")
        why = "not applied by CloudFormation"
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs: dict[str, Any] = {"Bucket": name}
            if self.r.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.r.region}
            s3.create_bucket(**kwargs)
            self.did(lid, "bucket missing (HeadBucket 404); created with CreateBucket")
            why = "set on the bucket created directly"

        versioning = props.get("VersioningConfiguration", {}).get("Status")
        if versioning and s3.get_bucket_versioning(Bucket=name).get("Status") != versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
            self.did(lid, f"VersioningConfiguration {why}; PutBucketVersioning({versioning})")

        enc = props.get("BucketEncryption")
        if enc:
            rules = []
            for rule in enc["ServerSideEncryptionConfiguration"]:
                api_rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                if "BucketKeyEnabled" in rule:
                    api_rule["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
                rules.append(api_rule)
            try:
                current = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
                current_algos = [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in current]
            except ClientError as exc:
                if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                    raise
                current_algos = []
            if current_algos != [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules]:
                s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
                self.did(lid, f"BucketEncryption {why}; PutBucketEncryption")

        pab = props.get("PublicAccessBlockConfiguration")
        if pab:
            try:
                current = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                    raise
                current = {}
            if any(current.get(k) != v for k, v in pab.items()):
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=pab)
                self.did(lid, f"PublicAccessBlockConfiguration {why}; PutPublicAccessBlock")

        ownership = props.get("OwnershipControls")
        if ownership:
            try:
                current = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
            except ClientError as exc:
                if error_code(exc) != "OwnershipControlsNotFoundError":
                    raise
                current = []
            if current != ownership["Rules"]:
                s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={"Rules": ownership["Rules"]})
                self.did(lid, f"OwnershipControls {why}; PutBucketOwnershipControls")

        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle:
            rules = [lifecycle_rule(rule) for rule in lifecycle["Rules"]]
            try:
                current = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                current = []
            if sorted(r.get("ID", "") for r in current) != sorted(r.get("ID", "") for r in rules):
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
                self.did(lid, f"LifecycleConfiguration {why}; PutBucketLifecycleConfiguration")

        tags = props.get("Tags")
        if tags:
            try:
                current_tags = tag_dict(s3.get_bucket_tagging(Bucket=name)["TagSet"])
            except ClientError as exc:
                if error_code(exc) != "NoSuchTagSet":
                    raise
                current_tags = {}
            if any(current_tags.get(k) != v for k, v in tag_dict(tags).items()):
                merged = {**current_tags, **tag_dict(tags)}
                s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in merged.items()]})
                self.did(lid, f"Tags {why}; PutBucketTagging")

    def s3_bucket_policy(self, lid: str, _name: str, props: dict[str, Any]) -> None:
        s3 = self.client("s3")
        bucket = props["Bucket"]
        wanted = props["PolicyDocument"]
        try:
            current: Any = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as exc:
            if error_code(exc) != "NoSuchBucketPolicy":
                raise
            current = None
        if current is not None and canonical(current) == canonical(wanted):
            return
        if not self.bucket_policies:
            self.skip(lid, f"bucket policy for {bucket} not applied (--no-bucket-policies)",
                      "bucket policy not applied (--no-bucket-policies)")
            return
        blocked = self.policy_blocks_objects(bucket, wanted)
        if blocked:
            self.skip(lid, f"bucket policy for {bucket} not applied: a scratch bucket given the same policy "
                           f"answered GetObject with {blocked} instead of NoSuchKey, so this endpoint would "
                           "refuse every object request (it is plain HTTP; the policy denies "
                           "aws:SecureTransport=false)",
                      "bucket policy not applied: with it the endpoint refuses all object requests")
            return
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))
        self.did(lid, f"bucket policy not created by CloudFormation; PutBucketPolicy on {bucket}")

    def policy_blocks_objects(self, bucket: str, policy: dict[str, Any]) -> str | None:
        """Try the policy on a scratch bucket: does GetObject still answer NoSuchKey?

        Returns the error code when the policy makes the endpoint refuse object
        requests, None when objects stay reachable.
        """
        text = json.dumps(policy)
        key = text.replace(bucket, "{bucket}")
        if key in self._policy_trials:
            return self._policy_trials[key]
        s3 = self.client("s3")
        scratch = f"provision-trial-{uuid.uuid4().hex[:16]}"
        kwargs: dict[str, Any] = {"Bucket": scratch}
        if self.r.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.r.region}
        s3.create_bucket(**kwargs)
        result: str | None = None
        try:
            s3.put_bucket_policy(Bucket=scratch, Policy=text.replace(bucket, scratch))
            try:
                s3.get_object(Bucket=scratch, Key="trial/absent")
            except ClientError as exc:
                code = error_code(exc)
                if code not in ("NoSuchKey", "404"):
                    result = code
        finally:
            try:
                s3.delete_bucket_policy(Bucket=scratch)
            finally:
                s3.delete_bucket(Bucket=scratch)
        self._policy_trials[key] = result
        return result

    # ECS ------------------------------------------------------------------------
    def ecs_cluster(self, lid: str, name: str, props: dict[str, Any]) -> None:
        ecs = self.client("ecs")
        tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
        clusters = ecs.describe_clusters(clusters=[name], include=["TAGS"]).get("clusters", [])
        cluster = next((c for c in clusters if c.get("status") == "ACTIVE"), None)
        if cluster is None:
            ecs.create_cluster(clusterName=name, tags=tags)
            self.did(lid, "cluster not created by CloudFormation; created with CreateCluster")
            return
        current = tag_dict(cluster.get("tags"), "key", "value")
        if tags and any(current.get(t["key"]) != t["value"] for t in tags):
            ecs.tag_resource(resourceArn=cluster["clusterArn"], tags=tags)
            self.did(lid, "Tags not applied by CloudFormation; TagResource")

    # CodeDeploy -------------------------------------------------------------------
    def codedeploy_application(self, lid: str, name: str, props: dict[str, Any]) -> None:
        cd = self.client("codedeploy")
        try:
            app = cd.get_application(applicationName=name)["application"]
        except ClientError as exc:
            if error_code(exc) != "ApplicationDoesNotExistException":
                raise
            cd.create_application(
                applicationName=name,
                computePlatform=props.get("ComputePlatform", "Server"),
                tags=props.get("Tags", []),
            )
            self.did(lid, "application not created by CloudFormation; created with CreateApplication")
            return
        if app.get("computePlatform") != props.get("ComputePlatform", "Server"):
            self.say(f"    warning: compute platform is {app.get('computePlatform')}, "
                     f"template says {props.get('ComputePlatform')}")

    def codedeploy_deployment_group(self, lid: str, name: str, props: dict[str, Any]) -> None:
        cd = self.client("codedeploy")
        app = props["ApplicationName"]
        try:
            cd.get_deployment_group(applicationName=app, deploymentGroupName=name)
            return
        except ClientError as exc:
            if error_code(exc) != "DeploymentGroupDoesNotExistException":
                raise
        cd.create_deployment_group(**lower_camel(props))
        self.did(lid, "deployment group not created by CloudFormation; created with CreateDeploymentGroup")

    # IAM role -------------------------------------------------------------------
    def iam_role(self, lid: str, name: str, props: dict[str, Any]) -> None:
        iam = self.client("iam")
        trust = props["AssumeRolePolicyDocument"]
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            iam.create_role(
                RoleName=name,
                Path=props.get("Path", "/"),
                Description=props.get("Description", ""),
                MaxSessionDuration=int(props.get("MaxSessionDuration", 3600)),
                AssumeRolePolicyDocument=json.dumps(trust),
                Tags=props.get("Tags", []),
            )
            self.did(lid, "role not created by CloudFormation; created with CreateRole")
            role = iam.get_role(RoleName=name)["Role"]

        if canonical(role.get("AssumeRolePolicyDocument")) != canonical(trust):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            self.did(lid, "trust policy differed from the template (principal of a resource CloudFormation "
                          "did not create); UpdateAssumeRolePolicy")

        for policy in props.get("Policies", []):
            pname, wanted = policy["PolicyName"], policy["PolicyDocument"]
            try:
                current = iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise
                current = None
            if current is None or canonical(current) != canonical(wanted):
                if current is None:
                    why = "missing"
                elif isinstance(current, str):
                    why = "stored by CloudFormation as a non-JSON document"
                else:
                    why = "differed from the template"
                iam.put_role_policy(RoleName=name, PolicyName=pname, PolicyDocument=json.dumps(wanted))
                self.did(lid, f"inline policy {pname} {why}; PutRolePolicy")

        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for arn in props.get("ManagedPolicyArns", []):
            if arn not in attached:
                try:
                    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
                    self.did(lid, f"managed policy {arn} not attached by CloudFormation; AttachRolePolicy")
                except ClientError as exc:
                    hint = ""
                    if error_code(exc) == "NoSuchEntity" and ":iam::aws:policy/" in arn:
                        hint = (" (the emulator does not know this AWS managed policy; moto loads them "
                                "when started with MOTO_IAM_LOAD_MANAGED_POLICIES=true)")
                    self.say(f"    warning: cannot attach {arn}: {error_code(exc)}{hint}")

        current_tags = tag_dict(iam.list_role_tags(RoleName=name).get("Tags"))
        tags = props.get("Tags", [])
        if any(current_tags.get(k) != v for k, v in tag_dict(tags).items()):
            iam.tag_role(RoleName=name, Tags=tags)
            self.did(lid, "Tags not applied by CloudFormation; TagRole")


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation LifecycleConfiguration rule -> S3 API rule."""
    out: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule["Prefix"]} if "Prefix" in rule else {}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    return out


def lower_camel(node: Any, key: str = "") -> Any:
    """CloudFormation property names -> CodeDeploy API member names."""
    if isinstance(node, list):
        return [lower_camel(x, key) for x in node]
    if not isinstance(node, dict) or key == "Tags":
        return node
    out = {}
    for k, v in node.items():
        api_key = "ecsServices" if k == "ECSServices" else k[:1].lower() + k[1:]
        out[api_key] = lower_camel(v, k)
    return out


# --------------------------------------------------------------------------
# Stacks
# --------------------------------------------------------------------------
def load_parameters(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {e["ParameterKey"]: str(e["ParameterValue"]) for e in entries}


def stack_parameter_value(value: str) -> str:
    """A list parameter may be echoed back in Python list notation ("['api', 'etl']")."""
    if value.startswith("[") and value.endswith("]"):
        try:
            items = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(items, list):
            return ",".join(str(i) for i in items)
    return value


def find_stack(cf: Any, name: str) -> dict[str, Any] | None:
    try:
        return cf.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def stack_template(cf: Any, name: str) -> dict[str, Any] | None:
    """The template a stack was created (or last updated) from, parsed; None if unavailable."""
    body = cf.get_template(StackName=name).get("TemplateBody")
    if isinstance(body, dict):  # botocore decodes JSON bodies
        return body
    if isinstance(body, str) and body.strip():
        parsed = parse_template(body)
        return parsed if isinstance(parsed, dict) else None
    return None


def existing_repositories(ecr: Any, names: list[str]) -> list[str]:
    present = []
    for name in names:
        try:
            ecr.describe_repositories(repositoryNames=[name])
            present.append(name)
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
    return present


def existing_oidc_provider(iam: Any, host: str = "token.actions.githubusercontent.com") -> str | None:
    for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if p["Arn"].endswith(f":oidc-provider/{host}"):
            return p["Arn"]
    return None


def provision(env: str, args: argparse.Namespace, clients: Callable[[str], Any], template: dict[str, Any],
              template_body: str, account: str) -> Reconciler:
    cf = clients("cloudformation")
    stack_name = f"{args.project}-{env}"
    print(f"\n== {args.project} / {env}: stack {stack_name}")

    params = load_parameters(args.parameters_dir / f"{env}.json")
    params["Project"] = args.project
    params["Environment"] = env
    if args.github_repository:
        params["GitHubRepository"] = args.github_repository
    params.setdefault("GitHubRepository", f"example-org/{args.project}")
    declared = template.get("Parameters", {})
    # Pass every list parameter explicitly (see infra/README.md, "Local emulators").
    for pname, spec in declared.items():
        if spec.get("Type") == "CommaDelimitedList" and pname not in params:
            params[pname] = str(spec.get("Default", ""))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise SystemExit(f"provision: {env}: parameters not in the template: {', '.join(unknown)}")

    checked = template  # the template the stack is checked against
    stack = find_stack(cf, stack_name)
    if stack is None:
        # Several environments in one account and region share what is named
        # without an environment suffix: the OIDC provider and the image
        # repositories. The first stack creates them; later ones are told so.
        if not params.get("GitHubOidcProviderArn"):
            existing = existing_oidc_provider(clients("iam"))
            if existing:
                params["GitHubOidcProviderArn"] = existing
                print(f"  account already has {existing}; passing it as GitHubOidcProviderArn "
                      "(one provider per URL per account)")
        if params.get("CreateImageRepositories", "true") == "true":
            probe = Renderer(template, params, args.region, account, stack_name, {})
            names = [str(probe.ref(lid)) for lid, res in template["Resources"].items()
                     if res["Type"] == "AWS::ECR::Repository"]
            present = existing_repositories(clients("ecr"), names)
            if present:
                params["CreateImageRepositories"] = "false"
                print(f"  account already has {', '.join(present)} (environments share this account and "
                      "region); passing CreateImageRepositories=false")
        cf.create_stack(
            StackName=stack_name,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Tags=[{"Key": "Project", "Value": args.project}, {"Key": "Environment", "Value": env}],
        )
        wait(cf, "stack_create_complete", stack_name, args.timeout)
        stack = find_stack(cf, stack_name)
        assert stack is not None
        print(f"  stack: created ({stack['StackStatus']})")
    elif stack["StackStatus"] not in OK_STATES:
        raise SystemExit(f"provision: stack {stack_name} is {stack['StackStatus']}; delete it and rerun")
    elif args.update:
        previous = {p["ParameterKey"] for p in stack.get("Parameters", [])}
        stack_params = []
        for k, v in params.items():
            # Decided when the stack was created (shared-account handling above): keep.
            if k in ("GitHubOidcProviderArn", "CreateImageRepositories") and k in previous:
                stack_params.append({"ParameterKey": k, "UsePreviousValue": True})
            else:
                stack_params.append({"ParameterKey": k, "ParameterValue": v})
        try:
            cf.update_stack(
                StackName=stack_name,
                TemplateBody=template_body,
                Parameters=stack_params,
                Capabilities=["CAPABILITY_NAMED_IAM"],
            )
            wait(cf, "stack_update_complete", stack_name, args.timeout)
            stack = find_stack(cf, stack_name)
            assert stack is not None
            print(f"  stack: updated ({stack['StackStatus']})")
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            print("  stack: exists, no updates to perform")
    else:
        print(f"  stack: exists ({stack['StackStatus']}), kept (pass --update to update it)")
        # A kept stack is checked against the template it was made from: its parameters
        # may not fit the current one (e.g. a list parameter that gained an element).
        stored = stack_template(cf, stack_name)
        if stored is not None and stored != template:
            checked = stored
            print(f"  the stack was made from a different template than {args.template}; checking it "
                  "against its own template (pass --update to apply the current one)")

    actual_params = {p["ParameterKey"]: stack_parameter_value(p.get("ParameterValue", ""))
                     for p in stack.get("Parameters", [])}
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
        if r.get("LogicalResourceId")
    }
    created_by_stack = set(physical)
    renderer = Renderer(checked, {**params, **actual_params}, args.region, account, stack_name, physical)

    not_created = [
        f"{lid} ({res['Type']})"
        for lid, res in checked["Resources"].items()
        if renderer.enabled(lid) and lid not in created_by_stack
    ]
    if not_created:
        print("  CloudFormation did not create: " + ", ".join(not_created))

    print("  checking resources:")
    reconciler = Reconciler(clients, renderer, print, bucket_policies=not args.no_bucket_policies)
    reconciler.run()

    stack_outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    print("  outputs:")
    for key, value in renderer.outputs().items():
        note = ""
        if key not in stack_outputs:
            note = "   (not among the stack's outputs; resolved here)"
        elif stack_outputs[key] != str(value):
            note = f"   (stack output was {stack_outputs[key]!r}; resolved here)"
        print(f"    {key} = {value}{note}")
    return reconciler


def wait(cf: Any, waiter_name: str, stack_name: str, timeout: int) -> None:
    delay = 2
    try:
        cf.get_waiter(waiter_name).wait(
            StackName=stack_name, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, timeout // delay)}
        )
    except WaiterError as exc:
        events = cf.describe_stack_events(StackName=stack_name).get("StackEvents", [])[:10]
        for e in events:
            print(f"    {e.get('LogicalResourceId')} {e.get('ResourceStatus')} {e.get('ResourceStatusReason', '')}")
        raise SystemExit(f"provision: {stack_name}: {exc}") from exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", default=",".join(ENVIRONMENTS),
                        help="comma-separated environments (default: dev,staging,prod)")
    parser.add_argument("--project", default="planwise", help="project name (default: planwise)")
    parser.add_argument("--github-repository", default=None,
                        help="owner/name trusted by the deployer role (default: from the parameter file)")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--parameters-dir", type=Path, default=DEFAULT_PARAMETERS_DIR)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "eu-west-1")
    parser.add_argument("--update", action="store_true", help="update stacks that already exist")
    parser.add_argument("--no-bucket-policies", action="store_true",
                        help="never put the template's bucket policies (by default each is put unless a "
                             "trial on a scratch bucket shows the endpoint would then refuse object requests)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds to wait for each stack")
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("provision: AWS_ENDPOINT_URL is not set (e.g. http://127.0.0.1:5000); this script only "
              "targets a local emulator. For AWS use `aws cloudformation deploy` (infra/README.md).",
              file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    envs = [e.strip() for e in args.environments.split(",") if e.strip()]
    bad = [e for e in envs if e not in ENVIRONMENTS]
    if bad or not envs:
        print(f"provision: unknown environment(s) {bad}; choose from {', '.join(ENVIRONMENTS)}", file=sys.stderr)
        return 2

    session = boto3.session.Session(region_name=args.region)
    config = Config(retries={"max_attempts": 3, "mode": "standard"})
    cache: dict[str, Any] = {}

    def clients(service: str) -> Any:
        # The SDK resolves AWS_ENDPOINT_URL and any AWS_ENDPOINT_URL_<SERVICE> itself.
        if service not in cache:
            cache[service] = session.client(service, config=config)
        return cache[service]

    template_body = args.template.read_text(encoding="utf-8")
    template = load_template(args.template)
    account = clients("sts").get_caller_identity()["Account"]
    print(f"endpoint {endpoint}, account {account}, region {args.region}, template {args.template}")
    for service in ("cloudformation", "s3", "ecr", "ecs", "codedeploy", "iam"):
        url = clients(service).meta.endpoint_url
        if url.rstrip("/") != endpoint.rstrip("/"):
            print(f"  {service} endpoint: {url}")

    direct: dict[tuple[str, str], dict[str, int]] = {}
    skipped: dict[tuple[str, str], dict[str, int]] = {}
    failures: list[str] = []
    for env in envs:
        result = provision(env, args, clients, template, template_body, account)
        failures += [f"{env}: {f}" for f in result.failed]
        for table, keys in ((direct, result.direct), (skipped, result.skipped)):
            for key in keys:
                per_env = table.setdefault(key, {})
                per_env[env] = per_env.get(env, 0) + 1

    def show(table: dict[tuple[str, str], dict[str, int]]) -> None:
        for (rtype, what), per_env in table.items():
            counts = " ".join(f"{env}={n}" for env, n in per_env.items())
            print(f"  - {rtype}: {what}  [{counts}]")

    print(f"\nsummary: stacks in place for {', '.join(envs)}")
    if direct:
        print("  done directly because CloudFormation on this endpoint did not (count per environment):")
        show(direct)
    else:
        print("  nothing had to be done directly")
    if skipped:
        print("  left out (see the lines marked 'skipped' above):")
        show(skipped)
    if failures:
        print("  FAILED:")
        for line in failures:
            print(f"  - {line}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
