#!/usr/bin/env python3
"""Bootstrap moto server B for IAM-enforcing tests.

While moto's IAM checks are still off: create IAM user `bed-admin` with an
inline policy allowing `*` on `*` and an access key.  Then turn the checks on
(`POST /moto-api/reset-auth` with body `0`) and verify that an unknown key is
denied and the admin key is accepted.  Prints `ACCESS_KEY_ID SECRET` on stdout.

Usage: bootstrap_iam.py http://127.0.0.1:PORT
"""
import json
import sys
import urllib.request

import boto3
import botocore.config
import botocore.exceptions


def client(url, service, akid, secret):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=akid, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def main():
    url = sys.argv[1].rstrip("/")
    iam = client(url, "iam", "AKIABEDBOOTSTRAP0001", "bootstrap")
    iam.create_user(UserName="bed-admin")
    iam.put_user_policy(
        UserName="bed-admin", PolicyName="bed-admin-all",
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }))
    key = iam.create_access_key(UserName="bed-admin")["AccessKey"]
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]

    req = urllib.request.Request(
        url + "/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()

    try:
        client(url, "iam", "AKIABEDNOBODY0000001", "nope").list_users()
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        if status != 403:
            raise SystemExit("moto B: unknown key got HTTP %s, want 403" % status)
    else:
        raise SystemExit("moto B: IAM checks are not on (unknown key accepted)")
    who = client(url, "sts", akid, secret).get_caller_identity()
    if not who["Arn"].endswith(":user/bed-admin"):
        raise SystemExit("moto B: admin key is %s, want user/bed-admin" % who["Arn"])
    client(url, "iam", akid, secret).list_users()
    print(akid, secret)


if __name__ == "__main__":
    main()
