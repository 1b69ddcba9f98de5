#!/usr/bin/env python3
"""Self-test of the AWS side of the bed: the fault proxy and both moto servers.

Run with the moto venv's Python after `tests/bed/aws/start STATE_DIR`:
    . STATE_DIR/aws.env
    "$ECR_OPERATOR_CACHE/venv-moto-5.2.5/bin/python" tests/bed/aws/selftest.py
(or just tests/bed/aws/selftest STATE_DIR).  Uses unique access key ids and
names, so it may run while other tests use the same bed.  Runs every test and
prints "N passed, N failed" at the end; exits non-zero on any failure.

The AWS tests go through the bed's running proxies ($BED_FAULTS,
$BED_IAM_FAULTS), which run the faultproxy.py of the bed's start; with
SELFTEST_FRESH_PROXY=1 they go through two proxies started from the current
faultproxy.py in front of the same moto servers instead (to check an edited
proxy without restarting the bed).  The tests of the streaming and registry
rules (method, path, probability, stall, dropAfterBytes, headers/body) always
start proxies of their own from the current file, in front of a small HTTP
server in this process, and, when BED_REGISTRY2 is set (or found in
$BED_STATE/registry.env), in front of the bed's second registry.
"""
import base64
import concurrent.futures
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
import botocore
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
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
    q = urllib.parse.urlencode(filters)
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
                {"action": "throttle", "count": -1}, {"action": "error", "code": "X"},
                {"action": "token"}, {"action": "token", "password": 5},
                {"action": "token", "password": "x", "seconds": "1"},
                {"action": "expires_in", "seconds": 60, "password": "x"},
                {"action": "throttle", "password": "x"}):
        status, out = ctl("POST", "/rules", bad)
        assert status == 400, (bad, status, out)
    assert ctl("GET", "/calls?bogus=1")[0] == 400
    assert ctl("GET", "/health")[1]["ok"] is True
    # a list in match = any of
    k2 = akid()
    rule({"match": {"accessKeyId": [k, k2]}, "action": "throttle", "count": 2})
    expect_error(client("ecr", k2).get_authorization_token, "ThrottlingException", 400)
    expect_error(client("ecr", k).get_authorization_token, "ThrottlingException", 400)


ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
PUBLIC_TARGET = "SpencerFrontendService.GetAuthorizationToken"
AWS_JSON = "application/x-amz-json-1.1"


def docker_password(token):
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "AWS", token
    return password


def raw_aws(base, target, key=None, service="ecr-public", region="us-east-1",
            body=b"{}", content_type=AWS_JSON):
    """POST / to base with X-Amz-Target `target`, SigV4-signed for `service`
    and `region` with access key id `key` (unsigned when key is None);
    returns (status, lower-case headers, body)."""
    headers = {"X-Amz-Target": target, "Content-Type": content_type}
    if key is not None:
        req = botocore.awsrequest.AWSRequest(method="POST", url=base + "/",
                                             data=body, headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, "selftest"),
                                service, region).add_auth(req)
        headers = dict(req.headers.items())
    return request(base, "POST", "/", body, headers)


def public_password(base=None):
    return ctl("GET", "/health", base=base)[1]["ecrPublicPassword"]


@test
def ecr_public_stand_in():
    k = akid()
    base = ENV["AWS_ENDPOINT_URL"]
    pub = client("ecr-public", k)
    d = pub.get_authorization_token()["authorizationData"]
    assert docker_password(d["authorizationToken"]) == public_password() == "public-auth-token", d
    assert abs(d["expiresAt"].timestamp() - (time.time() + 12 * 3600)) < 5, d
    # the wire shape: one object (not a list), expiresAt a number
    status, rh, out = raw_aws(base, PUBLIC_TARGET, k)
    assert status == 200 and rh["content-type"] == AWS_JSON and rh.get("x-amzn-requestid"), (status, rh)
    doc = json.loads(out)
    assert set(doc) == {"authorizationData"} and isinstance(doc["authorizationData"], dict), doc
    assert set(doc["authorizationData"]) == {"authorizationToken", "expiresAt"}, doc
    assert isinstance(doc["authorizationData"]["expiresAt"], (int, float)), doc
    got = calls(accessKeyId=k)
    assert len(got) == 2, got
    c = got[0]
    assert (c["service"], c["operation"], c["region"], c["signingService"], c["target"],
            c["contentType"], c["method"], c["path"], c["status"], c["requestBytes"]) == (
        "ecr-public", "GetAuthorizationToken", "us-east-1", "ecr-public", PUBLIC_TARGET,
        AWS_JSON, "POST", "/", 200, 2), c
    assert len(calls(accessKeyId=k, target=PUBLIC_TARGET, contentType=AWS_JSON)) == 2
    # rules apply as to any call
    rule({"match": {"accessKeyId": k, "service": "ecr-public",
                    "operation": "GetAuthorizationToken"}, "action": "throttle", "count": 1})
    e = expect_error(pub.get_authorization_token, "ThrottlingException", 400)
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    rule({"match": {"accessKeyId": k}, "action": "access_denied", "count": 1})
    expect_error(pub.get_authorization_token, "AccessDeniedException", 400)
    rule({"match": {"accessKeyId": k}, "action": "server_error", "status": 503, "count": 1})
    expect_error(pub.get_authorization_token, "ServiceUnavailable", 503)
    rule({"match": {"accessKeyId": k}, "action": "expires_in", "seconds": -60, "count": 1})
    d = pub.get_authorization_token()["authorizationData"]
    assert abs(d["expiresAt"].timestamp() - (time.time() - 60)) < 5, d
    assert docker_password(d["authorizationToken"]) == "public-auth-token"
    rule({"match": {"accessKeyId": k, "service": "ecr-public"}, "action": "token",
          "password": "pub-" + RUN, "count": 1})
    d = pub.get_authorization_token()["authorizationData"]
    assert docker_password(d["authorizationToken"]) == "pub-" + RUN, d
    assert abs(d["expiresAt"].timestamp() - (time.time() + 12 * 3600)) < 5, d
    rule({"match": {"accessKeyId": k}, "action": "token", "password": "pub2-" + RUN,
          "seconds": 90, "count": 1})
    d = pub.get_authorization_token()["authorizationData"]
    assert docker_password(d["authorizationToken"]) == "pub2-" + RUN, d
    assert abs(d["expiresAt"].timestamp() - (time.time() + 90)) < 5, d
    rule({"match": {"accessKeyId": k}, "action": "drop", "forward": True, "count": 1})
    try:
        pub.get_authorization_token()
    except (botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionError):
        pass
    else:
        raise AssertionError("drop forward: call succeeded")
    assert [(c["status"], c["action"]) for c in calls(accessKeyId=k)][2:] == [
        (400, "throttle"), (400, "access_denied"), (503, "server_error"),
        (200, "expires_in"), (200, "token"), (200, "token"), (0, "drop")], calls(accessKeyId=k)


@test
def ecr_public_refuses_malformed_requests():
    base = ENV["AWS_ENDPOINT_URL"]
    k = akid()
    # unsigned
    unsigned = boto3.client("ecr-public", endpoint_url=base, region_name="us-east-1",
                            config=NO_RETRY.merge(botocore.config.Config(
                                signature_version=botocore.UNSIGNED)))
    expect_error(unsigned.get_authorization_token, "MissingAuthenticationTokenException", 403)
    status, rh, out = raw_aws(base, PUBLIC_TARGET)
    assert (status, rh["x-amzn-errortype"], json.loads(out)["__type"]) == (
        403, "MissingAuthenticationTokenException", "MissingAuthenticationTokenException"), (status, rh, out)
    assert json.loads(out)["message"] and rh.get("x-amzn-requestid"), out
    # scoped to another region (the API is in us-east-1 only)
    e = expect_error(client("ecr-public", k, region="eu-west-1").get_authorization_token,
                     "InvalidSignatureException", 400)
    assert "region" in e.response["Error"]["Message"], e.response
    # scoped to another service
    status, rh, out = raw_aws(base, PUBLIC_TARGET, k, service="ecr")
    assert (status, rh["x-amzn-errortype"]) == (400, "InvalidSignatureException"), (status, rh, out)
    assert "ecr-public" in json.loads(out)["message"], out
    # a wrong content type, a body that is not a JSON object, another operation
    status, rh, _ = raw_aws(base, PUBLIC_TARGET, k, content_type="application/json")
    assert (status, rh["x-amzn-errortype"]) == (400, "UnknownOperationException"), (status, rh)
    status, rh, _ = raw_aws(base, PUBLIC_TARGET, k, body=b"[]")
    assert (status, rh["x-amzn-errortype"]) == (400, "SerializationException"), (status, rh)
    expect_error(client("ecr-public", k).describe_registries, "UnknownOperationException", 400)
    got = calls(service="ecr-public", accessKeyId=k)
    assert [(c["region"], c["signingService"], c["contentType"], c["status"]) for c in got] == [
        ("eu-west-1", "ecr-public", AWS_JSON, 400), ("us-east-1", "ecr", AWS_JSON, 400),
        ("us-east-1", "ecr-public", "application/json", 400),
        ("us-east-1", "ecr-public", AWS_JSON, 400), ("us-east-1", "ecr-public", AWS_JSON, 400)], got
    assert got[-1]["operation"] == "DescribeRegistries", got[-1]
    # unsigned calls are recorded too (no access key id)
    assert len([c for c in calls(service="ecr-public", target=PUBLIC_TARGET)
                if c["accessKeyId"] is None and c["status"] == 403]) >= 2


@test
def token_rewrite_per_region():
    k = akid()
    rule({"match": {"accessKeyId": k, "region": "eu-west-1"}, "action": "token",
          "password": "eu-" + RUN, "seconds": 600})
    rule({"match": {"accessKeyId": k, "region": "us-east-1"}, "action": "token",
          "password": "us-" + RUN})
    eu = client("ecr", k, region="eu-west-1").get_authorization_token()["authorizationData"]
    us = client("ecr", k).get_authorization_token()["authorizationData"]
    other = client("ecr", k, region="us-west-2").get_authorization_token()["authorizationData"]
    assert len(eu) == len(us) == 1
    assert docker_password(eu[0]["authorizationToken"]) == "eu-" + RUN, eu
    assert abs(eu[0]["expiresAt"].timestamp() - (time.time() + 600)) < 5, eu
    assert eu[0]["proxyEndpoint"].endswith(".eu-west-1.amazonaws.com"), eu
    assert docker_password(us[0]["authorizationToken"]) == "us-" + RUN, us
    assert us[0]["expiresAt"].timestamp() < time.time(), us  # moto's, untouched
    assert docker_password(other[0]["authorizationToken"]) == ENV["BED_ECR_PASSWORD"], other
    got = calls(accessKeyId=k)
    assert [(c["region"], c["action"], c["status"]) for c in got] == [
        ("eu-west-1", "token", 200), ("us-east-1", "token", 200), ("us-west-2", None, 200)], got
    assert all((c["service"], c["signingService"], c["target"], c["contentType"]) == (
        "ecr", "ecr", ECR_TARGET, AWS_JSON) for c in got), got
    # a token rule on other calls changes nothing (STS: XML)
    rule({"match": {"accessKeyId": k, "service": "sts"}, "action": "token", "password": "x"})
    assert client("sts", k).get_caller_identity()["Account"] == "123456789012"


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


# --- Fresh proxies: streaming and the registry-side rules ----------------------

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PROXY_PIDS = {}  # base URL -> pid of a fresh proxy


@contextlib.contextmanager
def fresh_proxy(upstream, *args):
    """A faultproxy.py of the current file in front of `upstream` (with extra
    command line `args`); yields its base URL (http://127.0.0.1:PORT); killed
    on exit."""
    d = tempfile.mkdtemp(prefix="faultproxy-selftest-")
    port_file = os.path.join(d, "port")
    log = open(os.path.join(d, "log"), "w")
    proc = subprocess.Popen([PROXY_PYTHON, os.path.join(HERE, "faultproxy.py"),
                             "--upstream", upstream, "--port-file", port_file,
                             *args],
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 10
        while not os.path.exists(port_file):
            assert proc.poll() is None, "faultproxy exited; see %s" % log.name
            assert time.time() < deadline, "no port file after 10 s"
            time.sleep(0.02)
        with open(port_file) as f:
            base = "http://127.0.0.1:%d" % int(f.read())
        PROXY_PIDS[base] = proc.pid
        yield base
    finally:
        proc.kill()
        proc.wait()
        log.close()


def proxy_rss_peak_kib(base):
    """VmHWM (peak RSS) of the fresh proxy at base."""
    with open("/proc/%d/status" % PROXY_PIDS[base]) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


class Upstream:
    """A small HTTP/1.1 server standing in for a registry: it reads every body
    (Content-Length or chunked), remembers what arrived (method, path, headers,
    length and sha256 of the body, whether it was complete), and answers JSON
    with those; `GET /data/N` streams N bytes, HEAD answers a Content-Length
    without a body, `GET /chunked/N` streams N bytes chunked."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                h, n, complete = hashlib.sha256(), 0, True
                try:
                    if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
                        while True:
                            line = self.rfile.readline()
                            if not line:
                                complete = False
                                break
                            size = int(line.split(b";")[0].strip() or b"0", 16)
                            if size == 0:
                                self.rfile.readline()
                                break
                            data = self.rfile.read(size)
                            h.update(data)
                            n += len(data)
                            if len(data) < size:
                                complete = False
                                break
                            self.rfile.readline()
                    else:
                        left = int(self.headers.get("Content-Length") or 0)
                        while left:
                            data = self.rfile.read(min(left, 1 << 16))
                            if not data:
                                complete = False
                                break
                            h.update(data)
                            n += len(data)
                            left -= len(data)
                except OSError:
                    complete = False
                return n, "sha256:" + h.hexdigest(), complete

            def do_GET(self):
                n, digest, complete = self._body()
                seen = {"method": self.command, "path": self.path, "bytes": n,
                        "digest": digest, "complete": complete,
                        "headers": dict(self.headers.items())}
                with outer.lock:
                    outer.requests.append(seen)
                if not complete:
                    self.close_connection = True
                    return
                m = re.match(r"^/(data|chunked)/(\d+)$", self.path)
                if m and self.command in ("GET", "HEAD"):
                    size = int(m.group(2))
                    self.send_response(200)
                    self.send_header("Docker-Content-Digest", "sha256:upstream")
                    if m.group(1) == "data":
                        self.send_header("Content-Length", str(size))
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    block = b"x" * (1 << 16)
                    left = size
                    while left:
                        part = block[:min(left, len(block))]
                        if m.group(1) == "data":
                            self.wfile.write(part)
                        else:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        left -= len(part)
                    if m.group(1) == "chunked":
                        self.wfile.write(b"0\r\n\r\n")
                    return
                out = json.dumps(seen).encode()
                self.send_response(201 if self.command in ("PUT", "POST") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Location", "/v2/up/blobs/uploads/next?_state=abc")
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_GET

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = S(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def upstream_and_proxy(*args):
    up = Upstream()
    try:
        with fresh_proxy(up.url, *args) as base:
            yield up, base
    finally:
        up.close()


def request(base, method, path, body=None, headers=None, timeout=30, conn=None,
            chunked=False):
    """(status, headers dict (lower-case keys), body bytes); `body` may be bytes
    or an iterable of bytes (sent chunked when `chunked`)."""
    own = conn is None
    if own:
        u = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {},
                     encode_chunked=chunked)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            conn.close()


def ctl_at(base, method, path, body=None):
    return ctl(method, path, body, base=base + "/__faults__")


def rule_at(base, spec):
    """Adds a rule to the fresh proxy at base; returns its id."""
    return rule(spec, base=base + "/__faults__")


def pattern(size, seed=0):
    """`size` bytes that differ from block to block (so a spliced or restarted
    body changes the digest)."""
    out = bytearray()
    i = seed
    while len(out) < size:
        out += hashlib.sha256(b"%d" % i).digest() * 64
        i += 1
    return bytes(out[:size])


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@test
def streams_large_bodies_both_ways_unchanged():
    with upstream_and_proxy() as (up, base):
        big = pattern(24 << 20, 1)
        hdrs = {"Authorization": "Basic bWlycm9yOnNlY3JldA==", "Range": "0-100",
                "Docker-Content-Digest": sha(big), "Content-Type": "application/octet-stream",
                "Host": "registry.example:5000", "X-Custom": "a, b;c=d"}
        status, rh, out = request(base, "PUT", "/v2/t/blobs/uploads/u1?digest=x", big, hdrs)
        assert status == 201, (status, out[:200])
        got = json.loads(out)
        assert (got["bytes"], got["digest"], got["complete"]) == (len(big), sha(big), True), got
        for k, v in hdrs.items():  # request headers arrive as sent (Host too)
            assert got["headers"].get(k) == v, (k, got["headers"])
        assert rh["location"] == "/v2/up/blobs/uploads/next?_state=abc", rh
        assert rh["docker-content-digest"] == sha(big), rh
        # chunked request body of 3 MiB: streamed, chunked on to the upstream
        mid = pattern(3 << 20, 2)
        status, _, out = request(base, "PATCH", "/v2/t/blobs/uploads/u2",
                                 (mid[i:i + 100000] for i in range(0, len(mid), 100000)),
                                 chunked=True)
        got = json.loads(out)
        assert status == 200 and (got["bytes"], got["digest"]) == (len(mid), sha(mid)), got
        assert "chunked" in got["headers"].get("Transfer-Encoding", ""), got["headers"]
        # a small chunked body is read whole and sent with a Content-Length
        status, _, out = request(base, "PATCH", "/v2/t/blobs/uploads/u3", iter([b"ab", b"cd"]),
                                 chunked=True)
        got = json.loads(out)
        assert (got["bytes"], got["headers"].get("Content-Length")) == (4, "4"), got
        # responses: Content-Length, chunked, HEAD keeps the length
        status, rh, out = request(base, "GET", "/data/%d" % (40 << 20))
        assert status == 200 and len(out) == 40 << 20 and rh["content-length"] == str(40 << 20)
        status, rh, out = request(base, "GET", "/chunked/%d" % (5 << 20))
        assert status == 200 and len(out) == 5 << 20 and "chunked" in rh.get("transfer-encoding", ""), rh
        status, rh, out = request(base, "HEAD", "/data/12345")
        assert (status, rh.get("content-length"), out) == (200, "12345", b""), rh
        assert rh["docker-content-digest"] == "sha256:upstream"
        peak = proxy_rss_peak_kib(base)
        if peak is not None:  # 24 + 3 + 40 MiB went through
            assert peak < 40 * 1024, "proxy peak RSS %d KiB: bodies were buffered" % peak
            print("    proxy peak RSS %.1f MiB" % (peak / 1024))
        _, calls_ = ctl_at(base, "GET", "/calls?method=PUT")
        c = calls_["calls"][0]
        assert (c["path"], c["query"], c["status"], c["requestBytes"]) == (
            "/v2/t/blobs/uploads/u1", "digest=x", 201, len(big)), c
        _, calls_ = ctl_at(base, "GET", "/calls?path=/data/%d" % (40 << 20))
        assert calls_["calls"][0]["responseBytes"] == 40 << 20, calls_


@test
def method_path_error_with_headers_and_body():
    with upstream_and_proxy() as (up, base):
        rid = rule_at(base, {
            "match": {"method": ["PUT", "PATCH"], "path": "/blobs/uploads/"},
            "action": "error", "status": 429, "headers": {"Retry-After": "1"},
            "body": {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
            "count": 1})
        u = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        big = pattern(5 << 20, 3)
        assert request(base, "GET", "/v2/t/blobs/uploads/x", conn=conn)[0] == 200  # GET: no match
        status, rh, out = request(base, "PUT", "/v2/t/blobs/uploads/x", big, conn=conn)
        assert status == 429 and rh["retry-after"] == "1", (status, rh)
        assert rh["content-type"] == "application/json"
        assert json.loads(out)["errors"][0]["code"] == "TOOMANYREQUESTS", out
        # the body was read (and dropped): the same connection goes on
        status, _, out = request(base, "PUT", "/v2/t/blobs/uploads/x", big, conn=conn)
        assert status == 201 and json.loads(out)["digest"] == sha(big)
        conn.close()
        assert len(up.seen("/v2/t/blobs/uploads/x")) == 2  # GET + second PUT
        got = calls(base=base + "/__faults__", method="PUT")
        assert [(c["status"], c["fault"], c["action"], c["requestBytes"]) for c in got] == [
            (429, rid, "error", len(big)), (201, None, None, len(big))], got
        # status only: an empty body; path as a list of regexes; anchors work
        rule_at(base, {"match": {"path": ["^/v2/a/", "^/v2/b/"]},
                                        "action": "error", "status": 503, "headers": {}})
        assert request(base, "GET", "/v2/b/manifests/v1")[:3:2] == (503, b"")
        assert request(base, "GET", "/x/v2/b/manifests/v1")[0] == 200
        # query: a regex in the raw query string
        rule_at(base, {"match": {"path": "^/q$", "query": "digest=sha256(:|%3A)ab"},
                       "action": "error", "status": 404})
        assert request(base, "PUT", "/q?_state=x&digest=sha256%3Aabc", b"")[0] == 404
        assert request(base, "PUT", "/q?digest=sha256:abc", b"")[0] == 404
        assert request(base, "PUT", "/q?digest=sha256:cd", b"")[0] == 201
        assert request(base, "PUT", "/q", b"")[0] == 201
        # an AWS error with extra headers
        rule_at(base, {"match": {"path": "^/aws$"}, "action": "throttle",
                                        "headers": {"Retry-After": "2"}, "count": 1})
        status, rh, out = request(base, "POST", "/aws", b"{}",
                                  {"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.X"})
        assert (status, rh["retry-after"], json.loads(out)["__type"]) == (
            400, "2", "ThrottlingException"), (status, rh, out)


@test
def drop_after_bytes_cuts_the_body_mid_way():
    with upstream_and_proxy() as (up, base):
        big = pattern(8 << 20, 4)
        for chunked in (False, True):
            path = "/v2/t/blobs/uploads/cut-%s" % chunked
            rule_at(base, {"match": {"path": path}, "action": "drop",
                                            "dropAfterBytes": 1 << 20, "count": 1})
            t = time.time()
            try:
                body = (big[i:i + (1 << 18)] for i in range(0, len(big), 1 << 18)) if chunked else big
                request(base, "PUT", path, body, chunked=chunked)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
                print("    dropAfterBytes (chunked=%s) -> %s" % (chunked, type(e).__name__))
            else:
                raise AssertionError("dropAfterBytes: the request succeeded")
            assert time.time() - t < 10
            deadline = time.time() + 5
            while not up.seen(path) and time.time() < deadline:
                time.sleep(0.05)
            seen = up.seen(path)
            assert len(seen) == 1 and not seen[0]["complete"], seen
            assert seen[0]["bytes"] == 1 << 20, seen[0]["bytes"]
            c = calls(base=base + "/__faults__", path=path)
            assert [(x["status"], x["action"], x["requestBytes"]) for x in c] == [
                (0, "drop", 1 << 20)], c
            # the retry goes through whole
            status, _, out = request(base, "PUT", path, big)
            assert status == 201 and json.loads(out)["digest"] == sha(big)
        # a body within the limit: forwarded whole, the answer lost
        rule_at(base, {"match": {"path": "^/small$"}, "action": "drop",
                                        "dropAfterBytes": 100, "count": 1})
        try:
            request(base, "PUT", "/small", b"x" * 100)
        except (ConnectionResetError, http.client.RemoteDisconnected):
            pass
        else:
            raise AssertionError("the answer was not lost")
        assert [r["complete"] for r in up.seen("/small")] == [True]
        # a plain drop (rst) of a streamed body: cut off before any byte goes on
        rule_at(base, {"match": {"path": "^/dropped$"}, "action": "drop",
                                        "rst": True, "count": 1})
        try:
            request(base, "PUT", "/dropped", big)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            pass
        else:
            raise AssertionError("drop: the request succeeded")
        assert up.seen("/dropped") == []


@test
def stall_never_answers():
    with upstream_and_proxy() as (up, base):
        rule_at(base, {"match": {"path": "^/stalled$"}, "action": "stall",
                                        "count": 1})
        t = time.time()
        try:
            request(base, "GET", "/stalled", timeout=1)
        except socket.timeout:
            pass
        else:
            raise AssertionError("stall: answered")
        assert 0.9 < time.time() - t < 3
        assert request(base, "GET", "/stalled")[0] == 200  # count used up
        rule_at(base, {"match": {"path": "^/stalled$"}, "action": "stall",
                                        "seconds": 0.5, "count": 1})
        t = time.time()
        try:
            request(base, "PUT", "/stalled", pattern(4 << 20), timeout=10)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            pass
        else:
            raise AssertionError("stall with seconds: answered")
        assert 0.4 < time.time() - t < 3, time.time() - t
        got = calls(base=base + "/__faults__", path="/stalled")
        assert [(c["status"], c["action"]) for c in got] == [
            (0, "stall"), (200, None), (0, "stall")], got
        assert len(up.seen("/stalled")) == 1


@test
def probability_is_a_seeded_fraction():
    with upstream_and_proxy() as (up, base):
        def faulted(path, n):
            return [request(base, "GET", path)[0] == 503 for _ in range(n)]

        for p in ("/p1", "/p2"):
            rule_at(base, {"match": {"path": "^%s$" % p}, "action": "error",
                                            "status": 503, "probability": 0.2, "seed": 42})
        a, b = faulted("/p1", 300), faulted("/p2", 300)
        assert a == b, "the same seed, the same decisions"
        assert 30 <= sum(a) <= 90, sum(a)
        print("    probability 0.2: %d of 300 faulted" % sum(a))
        rule_at(base, {"match": {"path": "^/p3$"}, "action": "error",
                                        "status": 503, "probability": 0.2, "seed": 43})
        assert faulted("/p3", 300) != a
        rules = {r["match"]["path"]: r for r in ctl_at(base, "GET", "/rules")[1]["rules"]}
        assert (rules["^/p1$"]["hits"], rules["^/p1$"]["matched"]) == (sum(a), 300), rules["^/p1$"]
        # count counts the faults only; 0 and 1 are never and always
        rule_at(base, {"match": {"path": "^/p4$"}, "action": "error",
                                        "status": 503, "probability": 0.5, "seed": 1, "count": 3})
        assert sum(faulted("/p4", 60)) == 3
        rule_at(base, {"match": {"path": "^/p5$"}, "action": "error",
                                        "status": 503, "probability": 0})
        rule_at(base, {"match": {"path": "^/p6$"}, "action": "error",
                                        "status": 503, "probability": 1})
        assert sum(faulted("/p5", 20)) == 0 and sum(faulted("/p6", 20)) == 20


@test
def ecr_public_answered_by_the_proxy_itself():
    with upstream_and_proxy("--public-password", "pw-" + RUN) as (up, base):
        assert public_password(base + "/__faults__") == "pw-" + RUN
        pub = client("ecr-public", "AKIASELFTESTPUBLIC01", endpoint=base)
        d = pub.get_authorization_token()["authorizationData"]
        assert docker_password(d["authorizationToken"]) == "pw-" + RUN, d
        expect_error(pub.describe_registries, "UnknownOperationException", 400)
        rule_at(base, {"match": {"service": "ecr-public"}, "action": "delay",
                       "delayMs": 300, "count": 1})
        t = time.time()
        pub.get_authorization_token()
        assert time.time() - t >= 0.3
        assert up.requests == [], up.requests  # nothing reached the upstream
        got = calls(base=base + "/__faults__")
        assert [(c["operation"], c["status"], c["action"]) for c in got] == [
            ("GetAuthorizationToken", 200, None), ("DescribeRegistries", 400, None),
            ("GetAuthorizationToken", 200, "delay")], got
        # a registry request has no target nor AWS fields
        assert request(base, "GET", "/v2/")[0] == 200
        c = calls(base=base + "/__faults__", path="/v2/")[0]
        assert (c["service"], c["target"], c["contentType"], c["signingService"]) == (
            None, None, None, None), c


@test
def new_fields_are_validated():
    with upstream_and_proxy() as (up, base):
        for bad in ({"match": {"path": "("}, "action": "drop"},
                    {"match": {"query": ["ok", "[z-a]"]}, "action": "drop"},
                    {"match": {"verb": "GET"}, "action": "drop"},
                    {"action": "error", "status": 503, "probability": 1.5},
                    {"action": "error", "status": 503, "probability": True},
                    {"action": "error", "status": 503, "seed": "x"},
                    {"action": "error", "status": 503, "dropAfterBytes": 5},
                    {"action": "drop", "forward": True, "dropAfterBytes": 5},
                    {"action": "drop", "dropAfterBytes": -1},
                    {"action": "delay", "delayMs": 5, "headers": {"a": "b"}},
                    {"action": "throttle", "body": {}},
                    {"action": "error", "status": 503, "headers": {"a": 1}},
                    {"action": "error"},
                    {"action": "stall", "seconds": -1}):
            status, out = ctl_at(base, "POST", "/rules", bad)
            assert status == 400, (bad, status, out)
        assert ctl_at(base, "GET", "/calls?requestBytes=0")[0] == 200


@test
def in_front_of_the_bed_registry():
    env = dict(ENV)
    if "BED_REGISTRY2" not in env and env.get("BED_STATE"):
        try:
            with open(os.path.join(env["BED_STATE"], "registry.env")) as f:
                for line in f:
                    k, _, v = line.strip().removeprefix("export ").partition("=")
                    env.setdefault(k, v.strip("'\""))
        except OSError:
            pass
    if "BED_REGISTRY2" not in env:
        print("    skipped: no BED_REGISTRY2 (and no $BED_STATE/registry.env)")
        return
    auth = "Basic " + base64.b64encode(("%s:%s" % (
        env["BED_REGISTRY2_USER"], env["BED_REGISTRY2_PASSWORD"])).encode()).decode()
    repo = "selftest-%s/blob" % RUN.lower()
    with fresh_proxy("http://" + env["BED_REGISTRY2"]) as base:
        host = base.split("//", 1)[1]
        status, rh, _ = request(base, "GET", "/v2/")
        assert status == 401 and rh["www-authenticate"].startswith("Basic"), (status, rh)
        assert request(base, "GET", "/v2/", headers={"Authorization": auth})[0] == 200
        blob = pattern(12 << 20, 9)
        # the first upload is cut off after 2 MiB, the second goes through
        rule_at(base, {"match": {"method": "PUT", "path": "/blobs/uploads/"},
                                        "action": "drop", "dropAfterBytes": 2 << 20, "count": 1})
        for attempt in (1, 2):
            status, rh, _ = request(base, "POST", "/v2/%s/blobs/uploads/" % repo,
                                    headers={"Authorization": auth})
            assert status == 202, status
            loc = urllib.parse.urlsplit(rh["location"])
            assert loc.netloc in ("", host), ("Location points at the proxy", rh["location"])
            target = loc.path + "?" + loc.query + "&digest=" + sha(blob)
            try:
                status, rh, out = request(base, "PUT", target, blob,
                                          {"Authorization": auth,
                                           "Content-Type": "application/octet-stream"})
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                assert attempt == 1
                continue
            assert attempt == 2 and status == 201, (attempt, status, out)
            assert rh["docker-content-digest"] == sha(blob), rh
        status, rh, _ = request(base, "HEAD", "/v2/%s/blobs/%s" % (repo, sha(blob)),
                                headers={"Authorization": auth})
        assert (status, rh["content-length"]) == (200, str(len(blob))), (status, rh)
        status, rh, out = request(base, "GET", "/v2/%s/blobs/%s" % (repo, sha(blob)),
                                  headers={"Authorization": auth, "Range": "bytes=0-9"})
        assert status in (200, 206), status
        if status == 206:
            assert out == blob[:10]
        else:
            assert sha(out) == sha(blob)
        got = calls(base=base + "/__faults__", method="PUT")
        assert [(c["status"], c["requestBytes"]) for c in got] == [
            (0, 2 << 20), (201, len(blob))], got


def use_fresh_aws_proxies(stack):
    """SELFTEST_FRESH_PROXY=1: the AWS tests through proxies of the current
    faultproxy.py, in front of the moto servers the bed's proxies front."""
    upstream_b = json.loads(urllib.request.urlopen(
        ENV["BED_IAM_FAULTS"] + "/health", timeout=10).read())["upstream"]
    a = stack.enter_context(fresh_proxy(ENV["BED_MOTO_URL"]))
    b = stack.enter_context(fresh_proxy(upstream_b))
    ENV.update({"AWS_ENDPOINT_URL": a, "BED_FAULTS": a + "/__faults__",
                "BED_IAM_ENDPOINT_URL": b, "BED_IAM_FAULTS": b + "/__faults__"})
    print("AWS tests through fresh proxies %s (moto A), %s (moto B)" % (a, b))


def main():
    stack = contextlib.ExitStack()
    if ENV.get("SELFTEST_FRESH_PROXY") == "1":
        use_fresh_aws_proxies(stack)
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
    stack.close()
    print("%d passed, %d failed" % (passed, failed))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
