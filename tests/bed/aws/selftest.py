#!/usr/bin/env python3
"""Self-test of the AWS side of the bed: the fault proxy and both moto servers.

Run with the moto venv's Python after `tests/bed/aws/start STATE_DIR`:
    . STATE_DIR/aws.env
    "$ECR_OPERATOR_CACHE/venv-moto-5.2.5/bin/python" tests/bed/aws/selftest.py
(or just tests/bed/aws/selftest STATE_DIR).  Uses unique access key ids and
names, so it may run while other tests use the same bed.  Exits non-zero on
the first failure; prints "N passed, 0 failed" at the end.
"""
import base64
import concurrent.futures
import json
import os
import time
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

ENV = os.environ
NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                  connect_timeout=5, read_timeout=10)
RUN = uuid.uuid4().hex[:8].upper()
_n = [0]


def akid():
    """A fresh 20-character access key id unique to this run and test."""
    _n[0] += 1
    return ("AKIAST" + RUN + "%06d" % _n[0])[:20]


def client(service, key, secret="selftest", endpoint=None, region="us-east-1",
           token=None):
    return boto3.client(service, endpoint_url=endpoint or ENV["AWS_ENDPOINT_URL"],
                        region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=NO_RETRY)


def ctl(method, path, body=None, base=None):
    url = (base or ENV["BED_FAULTS"]) + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rule(spec, base=None):
    status, out = ctl("POST", "/rules", spec, base)
    assert status == 200, (status, out)
    return out["id"]


def calls(base=None, **filters):
    q = "&".join("%s=%s" % kv for kv in filters.items())
    status, out = ctl("GET", "/calls" + ("?" + q if q else ""), None, base)
    assert status == 200, out
    assert out["count"] == len(out["calls"])
    return out["calls"]


def expect_error(fn, code, status, injected=True):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got = (e.response["Error"].get("Code"),
               e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), "want %s got %s" % ((code, status), got)
        if injected:  # moto's own errors may lack it; ours never do
            assert e.response["ResponseMetadata"].get("RequestId"), "no request id"
        return e
    raise AssertionError("no error, want %s" % code)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def throttle_ecr_scoped_and_counted():
    k, other = akid(), akid()
    rid = rule({"match": {"accessKeyId": k, "service": "ecr",
                          "operation": "GetAuthorizationToken"},
                "action": "throttle", "count": 2})
    ecr = client("ecr", k)
    e = expect_error(ecr.get_authorization_token, "ThrottlingException", 400)
    assert e.response["Error"]["Message"] == "Rate exceeded"
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    client("ecr", other).get_authorization_token()  # other keys unaffected
    expect_error(ecr.get_authorization_token, "ThrottlingException", 400)
    ecr.get_authorization_token()  # count used up
    r = [x for x in ctl("GET", "/rules")[1]["rules"] if x["id"] == rid][0]
    assert (r["hits"], r["remaining"]) == (2, 0), r
    got = calls(accessKeyId=k, operation="GetAuthorizationToken")
    assert [c["status"] for c in got] == [400, 400, 200], got
    assert [c["fault"] for c in got] == [rid, rid, None], got
    assert got[0]["service"] == "ecr" and got[0]["region"] == "us-east-1"
    assert 0 < time.time() - got[0]["time"] < 60, got[0]
    assert len(calls(accessKeyId=other)) == 1


@test
def token_format_and_expires_in():
    k = akid()
    ecr = client("ecr", k, region="eu-west-1")
    d = ecr.get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(d["authorizationToken"]).decode() == "AWS:" + ENV["BED_ECR_PASSWORD"]
    assert d["expiresAt"].timestamp() < time.time()  # moto: fixed 2015-01-01
    assert d["proxyEndpoint"] == "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", d
    rule({"match": {"accessKeyId": k}, "action": "expires_in", "seconds": 3600,
          "count": 1})
    d = ecr.get_authorization_token()["authorizationData"][0]
    assert abs(d["expiresAt"].timestamp() - (time.time() + 3600)) < 5, d
    rule({"match": {"accessKeyId": k}, "action": "expires_in", "seconds": -60})
    d = ecr.get_authorization_token()["authorizationData"][0]
    assert abs(d["expiresAt"].timestamp() - (time.time() - 60)) < 5, d
    assert len(calls(accessKeyId=k, region="eu-west-1")) == 3


@test
def access_denied_and_server_errors():
    k = akid()
    ecr, sts = client("ecr", k), client("sts", k)
    rule({"match": {"accessKeyId": k, "service": "ecr"}, "action": "access_denied", "count": 1})
    rule({"match": {"accessKeyId": k, "service": "sts"}, "action": "access_denied", "count": 1})
    expect_error(ecr.get_authorization_token, "AccessDeniedException", 400)
    expect_error(sts.get_caller_identity, "AccessDenied", 403)
    rule({"match": {"accessKeyId": k}, "action": "server_error", "count": 2})
    expect_error(ecr.get_authorization_token, "InternalFailure", 500)
    expect_error(sts.get_caller_identity, "InternalFailure", 500)
    rule({"match": {"accessKeyId": k}, "action": "server_error", "status": 503, "count": 2})
    expect_error(ecr.get_authorization_token, "ServiceUnavailable", 503)
    expect_error(sts.get_caller_identity, "ServiceUnavailable", 503)
    rule({"match": {"accessKeyId": k, "service": "sts"}, "action": "throttle", "count": 1})
    expect_error(sts.get_caller_identity, "Throttling", 400)
    rule({"match": {"accessKeyId": k}, "action": "error", "status": 400,
          "code": "RepositoryNotFoundException", "message": "nope", "count": 1})
    e = expect_error(ecr.get_authorization_token, "RepositoryNotFoundException", 400)
    assert e.response["Error"]["Message"] == "nope"
    sts.get_caller_identity()
    assert [c["status"] for c in calls(accessKeyId=k, service="sts")] == [403, 500, 503, 400, 200]


@test
def delay():
    k = akid()
    rule({"match": {"accessKeyId": k}, "action": "delay", "delayMs": 400, "count": 1})
    ecr = client("ecr", k)
    t = time.time()
    ecr.get_authorization_token()
    assert time.time() - t >= 0.4
    t = time.time()
    ecr.get_authorization_token()
    assert time.time() - t < 0.4


@test
def drop():
    k = akid()
    ecr = client("ecr", k)
    for extra in ({}, {"rst": True}, {"forward": True}):
        rule(dict({"match": {"accessKeyId": k}, "action": "drop", "count": 1}, **extra))
        try:
            ecr.get_authorization_token()
        except (botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionError) as e:
            print("    drop %s -> %s" % (extra, type(e).__name__))
        else:
            raise AssertionError("drop %s: call succeeded" % extra)
    ecr.get_authorization_token()
    assert [c["status"] for c in calls(accessKeyId=k)] == [0, 0, 0, 200]


@test
def sts_assume_role_passes_through_and_tracks_role():
    k = akid()
    role = "arn:aws:iam::123456789012:role/selftest-%s" % RUN.lower()
    sts = client("sts", k)
    rule({"match": {"roleArn": role, "service": "ecr"}, "action": "throttle", "count": 1})
    creds = sts.assume_role(RoleArn=role, RoleSessionName="selftest")["Credentials"]
    ecr = client("ecr", creds["AccessKeyId"], creds["SecretAccessKey"],
                 token=creds["SessionToken"])
    expect_error(ecr.get_authorization_token, "ThrottlingException", 400)
    ecr.get_authorization_token()
    got = calls(roleArn=role)
    assert [(c["operation"], c["accessKeyId"], c["status"]) for c in got] == [
        ("AssumeRole", k, 200),
        ("GetAuthorizationToken", creds["AccessKeyId"], 400),
        ("GetAuthorizationToken", creds["AccessKeyId"], 200)], got
    assert got[1]["sourceAccessKeyId"] == k


@test
def calls_exact_under_concurrency():
    keys = [akid() for _ in range(4)]
    rule({"match": {"accessKeyId": keys[0]}, "action": "delay", "delayMs": 50})

    def one(i):
        client("ecr", keys[i % 4], region=("us-east-1", "eu-west-1")[i % 2]).get_authorization_token()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(40)))
    for i, k in enumerate(keys):
        got = calls(accessKeyId=k, operation="GetAuthorizationToken")
        assert len(got) == 10 and all(c["status"] == 200 for c in got), got
        region = ("us-east-1", "eu-west-1")[i % 2]
        assert len(calls(accessKeyId=k, region=region)) == 10
    last = calls()[-1]["seq"]
    client("ecr", keys[1]).get_authorization_token()
    assert len(calls(since=last, accessKeyId=keys[1])) == 1


@test
def control_api():
    k = akid()
    rid = rule({"match": {"accessKeyId": k}, "action": "throttle"})
    assert any(r["id"] == rid for r in ctl("GET", "/rules")[1]["rules"])
    assert ctl("DELETE", "/rules/" + rid)[0] == 200
    assert ctl("DELETE", "/rules/" + rid)[0] == 404
    client("ecr", k).get_authorization_token()
    for bad in ({"action": "explode"}, {"match": {"akid": "x"}, "action": "drop"},
                {"action": "delay"}, {"action": "expires_in"},
                {"action": "throttle", "count": -1}, {"action": "error", "code": "X"}):
        status, out = ctl("POST", "/rules", bad)
        assert status == 400, (bad, status, out)
    assert ctl("GET", "/calls?bogus=1")[0] == 400
    assert ctl("GET", "/health")[1]["ok"] is True
    # a list in match = any of
    k2 = akid()
    rule({"match": {"accessKeyId": [k, k2]}, "action": "throttle", "count": 2})
    expect_error(client("ecr", k2).get_authorization_token, "ThrottlingException", 400)
    expect_error(client("ecr", k).get_authorization_token, "ThrottlingException", 400)


@test
def moto_b_enforces_iam():
    url, faults = ENV["BED_IAM_ENDPOINT_URL"], ENV["BED_IAM_FAULTS"]
    adm = (ENV["BED_IAM_ADMIN_ACCESS_KEY_ID"], ENV["BED_IAM_ADMIN_SECRET_ACCESS_KEY"])
    k = akid()
    expect_error(client("sts", k, endpoint=url).get_caller_identity,
                 "InvalidClientTokenId", 403, False)
    # moto answers denied ECR (awsJson) calls with an awsQuery-style XML body
    # and HTTP 403: SDKs see no error code, only the status.
    expect_error(client("ecr", k, endpoint=url).get_authorization_token,
                 "403", 403, False)
    # wrong secret for the admin key: the signature check fails
    expect_error(client("sts", adm[0], "wrong", endpoint=url).get_caller_identity,
                 "SignatureDoesNotMatch", 403, False)
    iam = client("iam", *adm, endpoint=url)
    sts = client("sts", *adm, endpoint=url)
    assert sts.get_caller_identity()["Arn"].endswith(":user/bed-admin")
    # a user with no policies: denied; allowed after a policy is attached
    name = "selftest-%s" % RUN.lower()
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    uecr = client("ecr", key["AccessKeyId"], key["SecretAccessKey"], endpoint=url)
    expect_error(uecr.get_authorization_token, "403", 403, False)
    # a role the user may assume, allowed to get ECR tokens
    acct = sts.get_caller_identity()["Account"]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::%s:user/%s" % (acct, name)},
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-" + RUN}}}]}))["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="ecr", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}))
    iam.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}]}))
    usts = client("sts", key["AccessKeyId"], key["SecretAccessKey"], endpoint=url)
    expect_error(lambda: usts.assume_role(RoleArn=role["Arn"], RoleSessionName="selftest",
                                          ExternalId="wrong"), "AccessDenied", 403, False)
    creds = usts.assume_role(RoleArn=role["Arn"], RoleSessionName="selftest",
                             ExternalId="ext-" + RUN)["Credentials"]
    recr = client("ecr", creds["AccessKeyId"], creds["SecretAccessKey"],
                  endpoint=url, token=creds["SessionToken"])
    d = recr.get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(d["authorizationToken"]).decode() == "AWS:%s-auth-token" % acct
    # faults work on proxy B too, scoped by role
    rule({"match": {"roleArn": role["Arn"]}, "action": "throttle", "count": 1}, base=faults)
    expect_error(recr.get_authorization_token, "ThrottlingException", 400)
    got = calls(base=faults, roleArn=role["Arn"], operation="GetAuthorizationToken")
    assert [c["status"] for c in got] == [200, 400], got


def main():
    passed = failed = 0
    for fn in TESTS:
        t = time.time()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e))
        else:
            passed += 1
            print("ok   %s (%.2fs)" % (fn.__name__, time.time() - t))
    print("%d passed, %d failed" % (passed, failed))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
