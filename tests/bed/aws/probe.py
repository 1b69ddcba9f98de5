#!/usr/bin/env python3
"""Start-up probe of the AWS side of the bed (run by tests/bed/aws/start).

Usage: probe.py PROXY_A_URL PROXY_B_URL ADMIN_AKID ADMIN_SECRET
Through proxy A (moto A, no IAM checks) with the bed's static key: ECR
GetAuthorizationToken; prints the password (the part after "AWS:" of the
decoded token).  Through proxy B (moto B, IAM checks on): STS
GetCallerIdentity with the admin key must be user/bed-admin.
"""
import base64
import os
import sys

import boto3
import botocore.config


def main():
    proxy_a, proxy_b, akid, secret = sys.argv[1:5]
    cfg = botocore.config.Config(retries={"total_max_attempts": 1})
    ecr = boto3.client("ecr", endpoint_url=proxy_a, region_name="us-east-1",
                       aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                       config=cfg)
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != "AWS" or not password:
        raise SystemExit("unexpected ECR token from moto: user %r" % user)
    sts = boto3.client("sts", endpoint_url=proxy_b, region_name="us-east-1",
                       aws_access_key_id=akid, aws_secret_access_key=secret,
                       config=cfg)
    arn = sts.get_caller_identity()["Arn"]
    if not arn.endswith(":user/bed-admin"):
        raise SystemExit("proxy B: admin key is %s, want user/bed-admin" % arn)
    print(password)


if __name__ == "__main__":
    main()
