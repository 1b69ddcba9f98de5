#!/usr/bin/env python3
"""Create IAM users and roles on moto B (IAM checks on) for one test.

Reads a JSON document on stdin:

    {"users": [{"name": "u1", "statements": [<policy statement>, ...]}],
     "roles": [{"name": "r1", "trust": [<trust statement>, ...],
                "statements": [<policy statement>, ...]}]}

Users are created first (each with one access key and, when `statements` is
non-empty, an inline policy), then roles (trust policy, inline policy), so trust
policies may name the users. Prints on stdout:

    {"account": "123456789012",
     "users": {"u1": {"arn": ..., "accessKeyId": ..., "secretAccessKey": ...}},
     "roles": {"r1": {"arn": ...}}}

Names must be unique per test (tests share moto B). Uses the bed's admin key
from BED_IAM_ADMIN_ACCESS_KEY_ID / BED_IAM_ADMIN_SECRET_ACCESS_KEY at
BED_IAM_ENDPOINT_URL. Run it with any Python 3: without boto3 it re-executes
itself with the bed's moto venv (tests/bed/aws/install).

Usage: /usr/bin/python3 tests/bed/aws/iam-fixture.py < spec.json
"""
import json
import os
import sys

try:
    import boto3
    import botocore.config
except ImportError:
    if os.environ.get("BED_IAM_FIXTURE_REEXEC"):
        raise SystemExit("iam-fixture: boto3 is missing even in the moto venv: "
                         "run tests/bed/aws/install")
    cache = os.environ.get("ECR_OPERATOR_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ecr-operator")
    venv_python = os.path.join(cache, "venv-moto-5.2.5", "bin", "python")
    if not os.path.exists(venv_python):
        raise SystemExit("iam-fixture: boto3 is missing and there is no moto venv "
                         "%s: run tests/bed/aws/install" % venv_python)
    os.environ["BED_IAM_FIXTURE_REEXEC"] = "1"
    os.execv(venv_python, [venv_python] + sys.argv)

def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit("iam-fixture: %s is not set (eval \"$(tests/bed/up)\")" % name)
    return value


def client(service):
    return boto3.client(
        service, endpoint_url=env("BED_IAM_ENDPOINT_URL"), region_name="us-east-1",
        aws_access_key_id=env("BED_IAM_ADMIN_ACCESS_KEY_ID"),
        aws_secret_access_key=env("BED_IAM_ADMIN_SECRET_ACCESS_KEY"),
        config=botocore.config.Config(retries={"total_max_attempts": 3}))


def policy(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def main():
    spec = json.load(sys.stdin)
    iam = client("iam")
    account = client("sts").get_caller_identity()["Account"]
    out = {"account": account, "users": {}, "roles": {}}
    for user in spec.get("users", []):
        name = user["name"]
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        if user.get("statements"):
            iam.put_user_policy(UserName=name, PolicyName="test",
                                PolicyDocument=policy(user["statements"]))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        out["users"][name] = {"arn": arn, "accessKeyId": key["AccessKeyId"],
                              "secretAccessKey": key["SecretAccessKey"]}
    for role in spec.get("roles", []):
        name = role["name"]
        arn = iam.create_role(RoleName=name,
                              AssumeRolePolicyDocument=policy(role["trust"]))["Role"]["Arn"]
        if role.get("statements"):
            iam.put_role_policy(RoleName=name, PolicyName="test",
                                PolicyDocument=policy(role["statements"]))
        out["roles"][name] = {"arn": arn}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
