#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for the ecr-operator test bed (Python 3 stdlib only).

It sits in front of one HTTP upstream -- an AWS emulator (moto) or an image
registry (the bed's plain-HTTP docker-registry) -- and forwards every request
to it unchanged: method, path, query string, headers (including the original
Host header, so SigV4 signatures still verify at moto and a registry's upload
`Location` points back at the proxy; Authorization, Range,
Docker-Content-Digest, WWW-Authenticate, ... pass both ways untouched) and
body.  Tests point the AWS SDK or a registry client at the proxy and drive it
through a small JSON control API to inject throttling, access denials, server
errors, latency, stalls, token expiries and rewrites and dropped connections
(also in the middle of a request body), and to count the calls the code under
test made.  In front of moto it also stands in for ECR Public, which moto
lacks: it answers GetAuthorizationToken itself (see "ECR Public stand-in").

Bodies stream: a request body of up to 1 MiB with a Content-Length (or a
chunked one that ends within 1 MiB) is read whole before the rules are asked,
as AWS requests are classified by their body, and forwarded with a
Content-Length; a larger one (a blob upload of any size, chunked or not)
is forwarded as it arrives, in the client's framing.  Responses stream too,
with the upstream's Content-Length (also on HEAD) or re-chunked; only the
responses the proxy must read (AssumeRole*, `expires_in`, `token`) are
buffered.  Nothing is held whole in memory but those small bodies.

Usage:
    faultproxy.py --upstream http://127.0.0.1:PORT [--listen 127.0.0.1]
                  [--port 0] [--port-file FILE]
                  [--public-password PASSWORD]

--public-password: the password in the ECR Public stand-in's tokens (default
"public-auth-token"; GET /__faults__/health reports it as ecrPublicPassword).

With --port 0 the kernel picks a free port; the port actually bound is written
to --port-file (atomically) once the proxy accepts connections.

Classification of each request
------------------------------
- accessKeyId: from `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/
  <region>/<service>/aws4_request, ...` (or a presigned `X-Amz-Credential`
  query parameter); null when the request is unsigned.
- region: from the same credential scope; null when unsigned.
- signingService: the credential scope's service as signed (`ecr`,
  `ecr-public`, `sts`, ...); null when unsigned.
- target, contentType: the request's X-Amz-Target and Content-Type headers as
  sent (null when absent), so tests can assert the request's shape.
- service: `ecr` when `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`;
  `ecr-public` when `X-Amz-Target: SpencerFrontendService.<Op>` (whatever the
  scope says, signed or not);
  otherwise the credential scope's service (`sts`, `iam`, ...); an unsigned
  request with a form `Action=` is taken as `sts` (AssumeRoleWithWebIdentity
  is unsigned); requests to moto's own `/moto-api/...` are `moto-api`.
  A registry request has none of these (all null): match it by `method` and
  `path`.
- operation: the part of `X-Amz-Target` after the last dot, or the form body's
  (or query string's) `Action=<Op>` (awsQuery: STS, IAM).
- roleArn: for AssumeRole* calls, the `RoleArn` parameter; for calls signed with
  temporary credentials that an AssumeRole* response handed out *through this
  proxy*, the role those credentials belong to.  This lets a test scope faults
  and call counts to "whatever runs as my role" without knowing the random
  temporary access key id.
- sourceAccessKeyId: for temporary credentials learnt as above, the access key
  id that called AssumeRole*.

Control API (JSON; never forwarded, never counted)
--------------------------------------------------
POST   /__faults__/rules        add a rule, returns {"id": "r1"}
GET    /__faults__/rules        {"rules": [...]} with hits/remaining per rule
DELETE /__faults__/rules        remove all rules
DELETE /__faults__/rules/<id>   remove one rule (404 if unknown)
GET    /__faults__/calls        {"calls": [...], "count": N}; filters as query
                                parameters on any record field, e.g.
                                ?accessKeyId=AKIA...&operation=GetAuthorizationToken
                                (repeat a parameter to accept any of several
                                values; `since=<seq>` keeps records with seq > it)
DELETE /__faults__/calls        forget all recorded calls
GET    /__faults__/issued?accessKeyId=AKIA...
                                {"secrets": [...]}: the secret access keys and
                                session tokens of the temporary credentials that
                                AssumeRole* responses handed out, through this
                                proxy, to a chain of calls started with that key
                                (so tests can check that none of them leaks)
GET    /__faults__/health       {"ok": true, "upstream": "...",
                                 "ecrPublicPassword": "public-auth-token"}

A rule:
    {"match": {"accessKeyId": "AKIA...", "service": "ecr",
               "operation": "GetAuthorizationToken", "region": "us-east-1",
               "roleArn": "arn:aws:iam::123456789012:role/x"},
     "action": "throttle", "count": 2}
    {"match": {"method": ["PUT", "PATCH"], "path": "^/v2/t1/.*/blobs/uploads/"},
     "action": "error", "status": 503, "probability": 0.2, "seed": 7}

- Every match field is optional (absent or null = any).  A value may be a
  string (exact, case-sensitive) or a list of strings (any of them).  Unknown
  match fields or actions are rejected with HTTP 400 so typos fail loudly.
  Fields: accessKeyId, service, operation, region, roleArn (see above),
  method (the HTTP method, exact), path: a regular expression (Python `re`)
  *searched* in the request path (without the query string), e.g.
  "/blobs/uploads/" or "^/v2/myrepo/manifests/", and query: a regular
  expression searched in the raw query string (as sent, still
  percent-encoded), e.g. the hex of a blob's digest to pick one upload; for
  both a list = any of them.  An invalid regex is rejected with HTTP 400.
- `count` (optional): the rule applies to that many matching requests, then
  stays listed with remaining=0 and no longer matches.  Absent = forever.
- `probability` (optional, 0..1): of the requests the rule matches, only this
  fraction gets the fault; the others go on as if the rule were not there (to
  the next rule, or upstream) and use up none of its `count`.  `seed`
  (optional, integer) seeds the rule's own random generator, so the sequence
  of decisions is reproducible (the n-th matching request always gets the same
  decision); without it the generator is seeded from the OS.  `hits` counts
  the faulted requests, `matched` all the requests the rule was asked about.
- Rules are tried in the order they were added; the first live matching rule
  decides (one rule per request).  Scope rules by accessKeyId (or roleArn) so
  tests running in parallel against one proxy don't disturb each other; in
  front of a registry, by a repository of the test's own in `path`, or give
  the test a proxy of its own.
- `delayMs` (optional, any action): sleep that long before acting.
- `status`, `code`, `message` (optional, error actions): override the HTTP
  status, the error code and the message.
- `headers` (optional, error actions): an object of extra response headers,
  e.g. {"Retry-After": "1"}; `body` (optional, "error" only): any JSON value,
  sent as the response body (Content-Type: application/json) instead of an
  AWS error document, e.g. a registry's {"errors": [{"code": "TOOMANYREQUESTS",
  "message": "slow down"}]}.

ECR Public stand-in
-------------------
A request with `X-Amz-Target: SpencerFrontendService.<Op>` (service
`ecr-public`: the ECR Public API, awsJson1_1, signing name `ecr-public`, real
endpoint https://api.ecr-public.us-east-1.amazonaws.com) is never forwarded:
moto has no ECR Public.  It is classified, recorded and matched by the rules
like any other call (throttle, access_denied, errors, delay, stall, drop,
rate_limit, expires_in, token all apply; rule actions come first; "drop"
with "forward" or "dropAfterBytes" loses the stand-in's answer), and where
the upstream would answer, the proxy answers instead:
- POST / with `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target:
  SpencerFrontendService.GetAuthorizationToken`, a JSON object body (the SDKs
  send `{}`), SigV4 credential scope `<AKID>/<date>/us-east-1/ecr-public/
  aws4_request`  ->  HTTP 200, `Content-Type: application/x-amz-json-1.1`,
  x-amzn-RequestId, body
      {"authorizationData": {"authorizationToken": base64("AWS:<password>"),
                             "expiresAt": <now + 12 h, epoch seconds>}}
  ONE object, not a list as in private ECR; <password> is --public-password
  (default "public-auth-token").
- no Authorization header (nor presigned X-Amz-Credential): 403
  MissingAuthenticationTokenException "Missing Authentication Token".
- an Authorization header that is not AWS4-HMAC-SHA256 with Credential,
  SignedHeaders and Signature: 400 IncompleteSignatureException.
- credential scope service not `ecr-public`: 400 InvalidSignatureException
  "Credential should be scoped to correct service: 'ecr-public'. ".
- credential scope region not us-east-1 (the only region with the ECR Public
  API; the stand-in plays its us-east-1 endpoint): 400
  InvalidSignatureException "Credential should be scoped to a valid region. ...".
- another method, path or Content-Type, or another SpencerFrontendService
  operation: 400 UnknownOperationException; a body that is not a JSON
  object: 400 SerializationException.
Errors are awsJson1_1 ({"__type": ..., "message": ...} plus the
x-amzn-ErrorType header).  The stand-in checks the request's shape and the
credential scope ONLY: it does NOT verify the SigV4 signature (any secret is
accepted, as on moto A) and evaluates NO IAM policy (neither
`ecr-public:GetAuthorizationToken` nor `sts:GetServiceBearerToken`), also on
proxy B in front of moto B.  So IAM-enforcement tests cannot cover ECR
Public; use `access_denied` rules for denials.

Actions:
- "throttle":      awsJson (ECR): HTTP 400, header x-amzn-ErrorType:
                   ThrottlingException, body {"__type":"ThrottlingException",
                   "message":"Rate exceeded"}.  awsQuery (STS, IAM): HTTP 400,
                   XML ErrorResponse with Code Throttling.
- "access_denied": awsJson: 400 AccessDeniedException; awsQuery: 403 AccessDenied.
- "server_error":  default HTTP 500 with code InternalFailure; with "status": 503
                   the code is ServiceUnavailable.  Body in the service's format.
- "error":         any error: requires "status"; with "code" (+ "message") the
                   body is an AWS error document in the request's protocol, with
                   "body" that JSON, with neither an empty body.
                   Error actions read (and discard) the whole request body
                   first, so the connection stays usable (keep-alive) and the
                   client has sent every byte of it: `requestBytes` counts them.
- "delay":         sleep "delayMs" milliseconds, then forward normally.
- "stall":         accept the request and never answer: no response, nothing
                   forwarded, the request body left unread; the connection is
                   held until the client closes it (a client timeout), or, with
                   "seconds", closed without a response after that long.  For a
                   slow answer that does come, use "delay".
- "expires_in":    forward, then rewrite the expiresAt of a successful (200)
                   GetAuthorizationToken JSON response to now + "seconds"
                   (epoch seconds; may be negative or 0): every entry of
                   authorizationData (private ECR: a list), or the one
                   authorizationData object (ECR Public).
- "token":         forward, then in a successful (200) GetAuthorizationToken
                   JSON response set every authorizationToken (the same
                   entries as "expires_in") to base64("AWS:" + "password"),
                   and, with "seconds", the expiresAt too, as "expires_in"
                   does.  E.g. {"match": {"accessKeyId": K, "region":
                   "eu-west-1"}, "action": "token", "password": "eu-pw",
                   "seconds": 600} gives that region its own token and expiry.
- "drop":          close the connection without any response (a network
                   failure).  The request is not forwarded, unless
                   "forward": true (then the upstream handles it and only the
                   response is lost).  "rst": true resets the connection
                   (TCP RST: SO_LINGER 0, then close) instead of closing it
                   cleanly.  A streamed request body (see above) is not read
                   first: the client is cut off in the middle of sending it.
                   "dropAfterBytes": N forwards the request line, the headers
                   and the first N bytes of the body upstream, then resets
                   the client's connection (RST unless "rst": false) and
                   abandons the upstream one, mid-body (a blob upload cut off
                   after N bytes; the upstream sees an incomplete request).
                   A body of N bytes or fewer is forwarded whole, the upstream
                   answers, and that answer is lost as with "forward": true.
- "rate_limit":    an account's request rate limit: at most "perSecond"
                   matching requests in any second pass (to the next rule or
                   upstream); the others are throttled as "throttle" does.

Every response the proxy generates carries an x-amzn-RequestId header.  The
error formats are the ones the AWS SDKs parse: awsJson1_1 (`__type` plus the
x-amzn-ErrorType header) and awsQuery (`<ErrorResponse><Error><Type/><Code/>
<Message/></Error><RequestId/></ErrorResponse>`).

Call records: {"seq", "time" (epoch seconds, float, when the request arrived),
"method", "path", "query" (the query string, "" if none), "service",
"operation", "accessKeyId", "region", "signingService", "target",
"contentType", "roleArn", "sourceAccessKeyId", "params" (AssumeRole* calls
only: the query parameters, e.g. RoleSessionName, ExternalId, WebIdentityToken),
"status" (HTTP status sent to the client; 0 = no response: dropped or
stalled; 502 = upstream unreachable), "fault" (the rule id applied, or null),
"action" (its action, or null), "requestBytes" (body bytes read from the
client: for "dropAfterBytes" the bytes forwarded, for "drop" and "stall" those
read before, for error actions all of them), "responseBytes" (body bytes
sent to the client)}.  A call is recorded before its response is written, so
once a client has its answer the record is visible; "responseBytes" is filled
in once a streamed body has been sent (it may lag the client's end by a
moment).
"""

import argparse
import base64
import http.client
import http.server
import itertools
import json
import os
import random
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
# ECR Public (awsJson1_1, smithy service SpencerFrontendService): answered by
# the proxy itself, moto has no ECR Public.
ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService."
ECR_PUBLIC_REGION = "us-east-1"  # the only region with the ECR Public API
ECR_PUBLIC_SIGNING_NAME = "ecr-public"
ECR_PUBLIC_TOKEN_TTL = 12 * 3600  # as the real API: valid for 12 hours
DEFAULT_PUBLIC_PASSWORD = "public-auth-token"
AWS_JSON_1_1 = "application/x-amz-json-1.1"
CRED_RE = re.compile(
    r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
QUERY_NS = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
    "proxy-connection",
}
MATCH_FIELDS = ("accessKeyId", "service", "operation", "region", "roleArn",
                "method", "path", "query")
REGEX_FIELDS = ("path", "query")
ACTIONS = ("throttle", "access_denied", "server_error", "error", "delay",
           "expires_in", "token", "drop", "rate_limit", "stall")
ERROR_ACTIONS = ("throttle", "rate_limit", "access_denied", "server_error",
                 "error")
RECORD_FIELDS = ("seq", "time", "method", "path", "query", "service",
                 "operation", "accessKeyId", "region", "signingService",
                 "target", "contentType", "roleArn", "sourceAccessKeyId",
                 "status", "fault", "action", "requestBytes", "responseBytes")
MAX_CALLS = 200000
# Request bodies up to this size are read whole before the rules are asked
# (AWS requests are classified by their body); larger ones stream.
BUFFER_LIMIT = 1 << 20
# The unit of streaming, both ways.
BLOCK = 256 * 1024
UPSTREAM_TIMEOUT = 120


class ClientGone(Exception):
    """The client closed or reset its connection while sending its body."""


class BadRequest(Exception):
    pass


class State:
    """Rules, call records and learnt temporary credentials; one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.rule_ids = itertools.count(1)
        self.calls = []
        self.call_seq = itertools.count(1)
        self.temp_keys = {}  # temporary AKID -> (roleArn, sourceAccessKeyId)
        self.issued = {}  # temporary AKID -> [secret access key, session token]
        self.regexes = {}  # rule id -> {"path"/"query": compiled patterns}
        self.rngs = {}  # rule id -> its random generator (probability)

    # -- rules ---------------------------------------------------------
    def add_rule(self, spec):
        if not isinstance(spec, dict):
            raise BadRequest("rule must be a JSON object")
        known = {"match", "action", "count", "delayMs", "seconds", "status",
                 "code", "message", "forward", "rst", "perSecond", "headers",
                 "body", "dropAfterBytes", "probability", "seed", "password"}
        extra = set(spec) - known
        if extra:
            raise BadRequest("unknown rule fields: %s" % sorted(extra))
        match = spec.get("match") or {}
        if not isinstance(match, dict):
            raise BadRequest("match must be an object")
        bad = set(match) - set(MATCH_FIELDS)
        if bad:
            raise BadRequest("unknown match fields: %s (known: %s)"
                             % (sorted(bad), list(MATCH_FIELDS)))
        for k, v in match.items():
            if v is None or isinstance(v, str):
                pass
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                pass
            else:
                raise BadRequest("match.%s must be a string or list of strings" % k)
        regexes = {}
        for k in REGEX_FIELDS:
            patterns = match.get(k)
            if patterns is None:
                continue
            try:
                regexes[k] = [re.compile(x) for x in
                              (patterns if isinstance(patterns, list) else [patterns])]
            except re.error as e:
                raise BadRequest("match.%s is not a regular expression: %s" % (k, e))
        action = spec.get("action")
        if action not in ACTIONS:
            raise BadRequest("action must be one of %s" % list(ACTIONS))
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or count < 0
                                  or isinstance(count, bool)):
            raise BadRequest("count must be a non-negative integer")
        delay = spec.get("delayMs", 0)
        if not isinstance(delay, (int, float)) or delay < 0:
            raise BadRequest("delayMs must be a non-negative number")
        if action == "delay" and "delayMs" not in spec:
            raise BadRequest("action delay needs delayMs")
        if action == "expires_in":
            if not _is_number(spec.get("seconds")):
                raise BadRequest("action expires_in needs numeric seconds")
        if action == "token":
            if not isinstance(spec.get("password"), str):
                raise BadRequest("action token needs a string password")
            if "seconds" in spec and not _is_number(spec["seconds"]):
                raise BadRequest("token seconds must be a number")
        elif "password" in spec:
            raise BadRequest("password only goes with action token")
        if action == "rate_limit" and not (isinstance(spec.get("perSecond"), int)
                                           and spec["perSecond"] > 0):
            raise BadRequest("action rate_limit needs a positive integer perSecond")
        if action == "error" and not isinstance(spec.get("status"), int):
            raise BadRequest("action error needs an integer status")
        if "code" in spec and not isinstance(spec["code"], str):
            raise BadRequest("code must be a string")
        headers = spec.get("headers")
        if headers is not None:
            if action not in ERROR_ACTIONS:
                raise BadRequest("headers only go with error actions %s"
                                 % list(ERROR_ACTIONS))
            if not (isinstance(headers, dict)
                    and all(isinstance(k, str) and isinstance(v, str)
                            for k, v in headers.items())):
                raise BadRequest("headers must be an object of strings")
        if "body" in spec and action != "error":
            raise BadRequest("body only goes with action error")
        if "dropAfterBytes" in spec:
            n = spec["dropAfterBytes"]
            if action != "drop" or spec.get("forward"):
                raise BadRequest("dropAfterBytes goes with action drop, "
                                 "without forward")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise BadRequest("dropAfterBytes must be a non-negative integer")
        if action == "stall" and "seconds" in spec and not (
                isinstance(spec["seconds"], (int, float)) and spec["seconds"] > 0):
            raise BadRequest("stall seconds must be a positive number")
        probability = spec.get("probability")
        if probability is not None and not (
                isinstance(probability, (int, float))
                and not isinstance(probability, bool) and 0 <= probability <= 1):
            raise BadRequest("probability must be a number from 0 to 1")
        seed = spec.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise BadRequest("seed must be an integer")
        if "status" in spec and not (isinstance(spec["status"], int)
                                     and 100 <= spec["status"] <= 599):
            raise BadRequest("status must be an HTTP status code")
        with self.lock:
            rule = dict(spec)
            rule["match"] = {k: v for k, v in match.items() if v is not None}
            rule["id"] = "r%d" % next(self.rule_ids)
            rule["hits"] = 0
            rule["remaining"] = count
            rule["passed"] = []  # rate_limit: when requests passed, last second
            rule["matched"] = 0
            self.rules.append(rule)
            # Kept beside the rule, which is listed as JSON.
            self.regexes[rule["id"]] = regexes
            self.rngs[rule["id"]] = random.Random(seed)
            return rule["id"]

    def list_rules(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def delete_rules(self, rule_id=None):
        with self.lock:
            if rule_id is None:
                self.rules = []
                self.regexes, self.rngs = {}, {}
                return True
            before = len(self.rules)
            self.rules = [r for r in self.rules if r["id"] != rule_id]
            self.regexes.pop(rule_id, None)
            self.rngs.pop(rule_id, None)
            return len(self.rules) != before

    def take_rule(self, info):
        """First live rule matching info; counts the hit atomically."""
        with self.lock:
            for rule in self.rules:
                if rule["remaining"] is not None and rule["remaining"] <= 0:
                    continue
                if not all(_field_matches(want, info.get(k))
                           for k, want in rule["match"].items()
                           if k not in REGEX_FIELDS):
                    continue
                if not all(any(r.search(info.get(k) or "") for r in patterns)
                           for k, patterns in self.regexes[rule["id"]].items()):
                    continue
                rule["matched"] += 1
                if rule.get("probability") is not None and \
                        self.rngs[rule["id"]].random() >= rule["probability"]:
                    continue  # not this time: as if the rule were not there
                if rule["action"] == "rate_limit":
                    now = time.monotonic()
                    rule["passed"] = [t for t in rule["passed"] if now - t < 1.0]
                    if len(rule["passed"]) < rule["perSecond"]:
                        rule["passed"].append(now)
                        continue  # under the limit: as if the rule were not there
                rule["hits"] += 1
                if rule["remaining"] is not None:
                    rule["remaining"] -= 1
                return dict(rule)
        return None

    # -- calls ---------------------------------------------------------
    def record(self, info, status, rule):
        """Records a call; returns the record (see `update`)."""
        rec = {k: info.get(k) for k in RECORD_FIELDS}
        rec["query"] = rec["query"] or ""
        rec["requestBytes"] = rec["requestBytes"] or 0
        rec["responseBytes"] = rec["responseBytes"] or 0
        rec["status"] = status
        rec["fault"] = rule["id"] if rule else None
        rec["action"] = rule["action"] if rule else None
        # What a role was asked for with (the test checks the shape of a web
        # identity exchange: the token's claims, the session name).
        if (rec["operation"] or "").startswith("AssumeRole"):
            rec["params"] = dict(info.get("params") or {})
        with self.lock:
            rec["seq"] = next(self.call_seq)
            self.calls.append(rec)
            if len(self.calls) > MAX_CALLS:
                del self.calls[: len(self.calls) - MAX_CALLS]
        sys.stderr.write("%s #%d %s %s %s/%s key=%s region=%s -> %s%s\n" % (
            time.strftime("%H:%M:%S"), rec["seq"], rec["method"], rec["path"],
            rec["service"], rec["operation"], rec["accessKeyId"],
            rec["region"], rec["status"],
            " [%s %s]" % (rec["fault"], rec["action"]) if rule else ""))
        sys.stderr.flush()
        return rec

    def update(self, rec, **fields):
        """Sets fields of a record after the fact (responseBytes once sent)."""
        with self.lock:
            rec.update(fields)

    def query_calls(self, filters):
        for k in filters:
            if k not in RECORD_FIELDS and k != "since":
                raise BadRequest("unknown filter %r (known: %s, since)"
                                 % (k, list(RECORD_FIELDS)))
        since = None
        if "since" in filters:
            try:
                since = int(filters["since"][-1])
            except ValueError:
                raise BadRequest("since must be an integer")
        with self.lock:
            calls = [dict(c) for c in self.calls]
        out = []
        for c in calls:
            if since is not None and c["seq"] <= since:
                continue
            ok = True
            for k, vals in filters.items():
                if k == "since":
                    continue
                v = c.get(k)
                sv = "" if v is None else str(v)
                if sv not in vals:
                    ok = False
                    break
            if ok:
                out.append(c)
        return out

    def reset_calls(self):
        with self.lock:
            self.calls = []

    # -- temporary credentials ----------------------------------------
    def learn_key(self, akid, role_arn, source, secrets=()):
        with self.lock:
            self.temp_keys[akid] = (role_arn, source)
            self.issued[akid] = list(secrets)

    def key_info(self, akid):
        with self.lock:
            return self.temp_keys.get(akid)

    def issued_from(self, root):
        """Secret key and session token of every temporary key whose chain of
        AssumeRole* calls started with the access key `root`."""
        with self.lock:
            out = []
            for akid, secrets in self.issued.items():
                source, seen = akid, set()
                while source in self.temp_keys and source not in seen:
                    seen.add(source)
                    source = self.temp_keys[source][1]
                if source == root:
                    out.extend(secrets)
            return out


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _field_matches(want, have):
    if isinstance(want, list):
        return have in want
    return have == want


def _request_id():
    return str(uuid.uuid4())


def classify(method, path, query, headers, body, state):
    info = {"time": time.time(), "method": method, "path": path, "service": None,
            "operation": None, "accessKeyId": None, "region": None,
            "signingService": None, "target": headers.get("X-Amz-Target"),
            "contentType": headers.get("Content-Type"),
            "roleArn": None, "sourceAccessKeyId": None, "params": {},
            "protocol": None}
    auth = headers.get("Authorization", "")
    m = CRED_RE.search(auth)
    if not m:
        cred = urllib.parse.parse_qs(query).get("X-Amz-Credential")
        if cred:
            m = CRED_RE.search("Credential=" + cred[0])
    if m:
        info["accessKeyId"], _, info["region"], info["service"] = m.groups()
        info["signingService"] = info["service"]
    target = headers.get("X-Amz-Target")
    ctype = (headers.get("Content-Type") or "").lower()
    if target:
        info["protocol"] = "json"
        info["operation"] = target.rsplit(".", 1)[-1]
        if target.startswith(ECR_TARGET_PREFIX):
            info["service"] = "ecr"
        elif target.startswith(ECR_PUBLIC_TARGET_PREFIX):
            info["service"] = "ecr-public"
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            info["params"] = {k: v for k, v in doc.items() if isinstance(v, str)}
    else:
        params = {}
        if query:
            params.update(urllib.parse.parse_qs(query))
        if "x-www-form-urlencoded" in ctype and body:
            try:
                params.update(urllib.parse.parse_qs(
                    body.decode("utf-8", "replace")))
            except Exception:
                pass
        params = {k: v[-1] for k, v in params.items()}
        info["params"] = params
        if "Action" in params:
            info["protocol"] = "query"
            info["operation"] = params["Action"]
            if info["service"] is None:
                info["service"] = "sts"
        elif "json" in ctype:
            info["protocol"] = "json"
    if path.startswith("/moto-api"):
        info["service"] = "moto-api"
    if info["operation"] and info["operation"].startswith("AssumeRole"):
        info["roleArn"] = info["params"].get("RoleArn")
    elif info["accessKeyId"]:
        known = state.key_info(info["accessKeyId"])
        if known:
            info["roleArn"], info["sourceAccessKeyId"] = known
    return info


def error_response(info, status, code, message):
    """(status, headers, body) of an AWS error in the request's protocol."""
    rid = _request_id()
    json_proto = info.get("protocol") == "json" or (
        info.get("protocol") is None and info.get("service") == "ecr")
    if json_proto:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"),
                   ("x-amzn-RequestId", rid),
                   ("x-amzn-ErrorType", code)]
    else:
        ns = QUERY_NS.get(info.get("service") or "sts", QUERY_NS["sts"])
        kind = "Receiver" if status >= 500 else "Sender"
        body = ('<ErrorResponse xmlns="%s">\n'
                '  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
                '    <Message>%s</Message>\n  </Error>\n'
                '  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                % (ns, kind, _xml_escape(code), _xml_escape(message), rid)
                ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)]
    return status, headers, body


def _xml_escape(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def fault_error(info, rule):
    action = rule["action"]
    json_proto = info.get("protocol") == "json" or info.get("service") == "ecr"
    if action in ("throttle", "rate_limit"):
        status = 400
        code = "ThrottlingException" if json_proto else "Throttling"
        message = "Rate exceeded"
    elif action == "access_denied":
        status = 400 if json_proto else 403
        code = "AccessDeniedException" if json_proto else "AccessDenied"
        message = ("User is not authorized to perform: %s:%s (injected by "
                   "faultproxy)" % (info.get("service"), info.get("operation")))
    elif action == "server_error":
        status = rule.get("status", 500)
        code = "ServiceUnavailable" if status == 503 else "InternalFailure"
        message = ("Service unavailable (injected)" if status == 503
                   else "Internal failure (injected)")
    else:  # "error"
        status = rule["status"]
        code = rule.get("code")
        message = "Injected error"
        if code is None or "body" in rule:  # not an AWS error
            headers = [("Content-Type", "application/json")] if "body" in rule else []
            out = json.dumps(rule["body"]).encode() if "body" in rule else b""
            headers += list((rule.get("headers") or {}).items())
            return status, headers, out
    status = rule.get("status", status)
    code = rule.get("code", code)
    message = rule.get("message", message)
    status, headers, out = error_response(info, status, code, message)
    return status, headers + list((rule.get("headers") or {}).items()), out


def rewrite_authorization(body, seconds=None, password=None):
    """A GetAuthorizationToken JSON answer with every authorizationData entry
    (private ECR: a list of objects; ECR Public: one object) rewritten:
    expiresAt = now + seconds (epoch seconds) unless seconds is None,
    authorizationToken = base64("AWS:" + password) unless password is None.
    Anything else comes back unchanged."""
    try:
        doc = json.loads(body)
    except Exception:
        return body
    data = doc.get("authorizationData") if isinstance(doc, dict) else None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return body
    when = None if seconds is None else int(time.time() + seconds)
    token = None if password is None else _docker_token(password)
    for entry in data:
        if isinstance(entry, dict):
            if when is not None:
                entry["expiresAt"] = when
            if token is not None:
                entry["authorizationToken"] = token
    return json.dumps(doc).encode()


def rewrite_for(rule, body):
    """The answer as an `expires_in` or `token` rule rewrites it."""
    if rule["action"] == "expires_in":
        return rewrite_authorization(body, seconds=rule["seconds"])
    return rewrite_authorization(body, seconds=rule.get("seconds"),
                                 password=rule["password"])


def _docker_token(password):
    return base64.b64encode(("AWS:" + password).encode()).decode()


def ecr_public_answer(info, method, path, query, headers, body, password):
    """(status, headers, body) of the ECR Public stand-in for a request
    classified as service ecr-public.  Checks the request's shape and its
    SigV4 credential scope (not the signature, not IAM), as the real endpoint
    https://api.ecr-public.us-east-1.amazonaws.com would refuse them."""
    auth = headers.get("Authorization")
    presigned = "X-Amz-Credential" in urllib.parse.parse_qs(query)
    if not auth and not presigned:
        return error_response(info, 403, "MissingAuthenticationTokenException",
                              "Missing Authentication Token")
    if info.get("accessKeyId") is None or (auth and not (
            auth.startswith("AWS4-HMAC-SHA256 ") and "SignedHeaders=" in auth
            and "Signature=" in auth)):
        return error_response(
            info, 400, "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and "
            "'Signature' parameters (AWS4-HMAC-SHA256). Authorization=%s"
            % (auth or "")[:40])
    if info.get("signingService") != ECR_PUBLIC_SIGNING_NAME:
        return error_response(
            info, 400, "InvalidSignatureException",
            "Credential should be scoped to correct service: '%s'. "
            % ECR_PUBLIC_SIGNING_NAME)
    if info.get("region") != ECR_PUBLIC_REGION:
        return error_response(
            info, 400, "InvalidSignatureException",
            "Credential should be scoped to a valid region. (faultproxy: the "
            "ECR Public API is in %s only, got %r)"
            % (ECR_PUBLIC_REGION, info.get("region")))
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if method != "POST" or path != "/" or ctype != AWS_JSON_1_1:
        return error_response(
            info, 400, "UnknownOperationException",
            "faultproxy: ECR Public wants POST / with Content-Type %s, got %s %s "
            "with %r" % (AWS_JSON_1_1, method, path, headers.get("Content-Type")))
    if info.get("operation") != "GetAuthorizationToken":
        return error_response(
            info, 400, "UnknownOperationException",
            "faultproxy: the ECR Public stand-in answers GetAuthorizationToken "
            "only, not %s" % info.get("operation"))
    try:
        doc = json.loads(body) if body is not None else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return error_response(info, 400, "SerializationException",
                              "faultproxy: the request body is not a JSON object")
    out = json.dumps({"authorizationData": {
        "authorizationToken": _docker_token(password),
        "expiresAt": int(time.time() + ECR_PUBLIC_TOKEN_TTL)}}).encode()
    return 200, [("Content-Type", AWS_JSON_1_1),
                 ("x-amzn-RequestId", _request_id())], out


def learn_credentials(state, info, body):
    """Remember temporary keys handed out by AssumeRole* responses."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):  # a JSON-protocol STS
        creds = doc.get("Credentials") or {}
        akid = creds.get("AccessKeyId")
        if isinstance(akid, str):
            secrets = [creds.get(k) for k in ("SecretAccessKey", "SessionToken")]
            state.learn_key(akid, info.get("roleArn"), info.get("accessKeyId"),
                            [x for x in secrets if isinstance(x, str)])
        return
    try:
        root = ET.fromstring(body)
    except Exception:
        return
    fields = {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in root.iter()}
    if fields.get("AccessKeyId"):
        secrets = [fields[k] for k in ("SecretAccessKey", "SessionToken") if fields.get(k)]
        state.learn_key(fields["AccessKeyId"], info.get("roleArn"),
                        info.get("accessKeyId"), secrets)


class ClientBody:
    """A request's body as the client sends it.  Up to BUFFER_LIMIT bytes with
    a Content-Length (or a chunked body that ends within it) are read at once
    into `prefix` (`complete`); the rest of a larger body is read as it is
    forwarded (`chunks`), or thrown away (`drain`).  `read_bytes` counts the
    body bytes read from the client so far (decoded, without chunk framing)."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        te = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        self.length = None
        self.remaining = 0  # Content-Length framing: bytes not yet read
        self.chunk_left = 0  # chunked framing: bytes left in the current chunk
        self.in_chunk = False
        self.read_bytes = 0
        self.done = False  # every byte of the body read
        self.consumed = False  # prefix handed out by chunks()
        parts = []
        if self.chunked:
            n = 0
            while n <= BUFFER_LIMIT:
                data = self._read_chunked(BLOCK)
                if not data:
                    break
                parts.append(data)
                n += len(data)
        else:
            try:
                self.length = max(0, int(headers.get("Content-Length") or 0))
            except ValueError:
                self.length = 0
            self.remaining = self.length
            if self.length <= BUFFER_LIMIT:
                while True:
                    data = self._read_length(BLOCK)
                    if not data:
                        break
                    parts.append(data)
        self.prefix = b"".join(parts)
        self.complete = self.done

    def _read(self, n):
        try:
            data = self.rfile.read(n)
        except OSError as e:
            raise ClientGone(str(e))
        if not data:
            raise ClientGone("the client closed its connection mid-body")
        self.read_bytes += len(data)
        return data

    def _readline(self):
        try:
            line = self.rfile.readline(65537)
        except OSError as e:
            raise ClientGone(str(e))
        if not line:
            raise ClientGone("the client closed its connection mid-body")
        return line

    def _read_length(self, n):
        if self.remaining <= 0:
            self.done = True
            return b""
        data = self._read(min(n, self.remaining))
        self.remaining -= len(data)
        if self.remaining == 0:
            self.done = True
        return data

    def _read_chunked(self, n):
        if self.done:
            return b""
        while self.chunk_left == 0:
            if self.in_chunk:
                self._readline()  # the CRLF after a chunk's data
                self.in_chunk = False
            line = self._readline()
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise ClientGone("bad chunk size line %r" % line[:40])
            if size == 0:
                while self._readline() not in (b"\r\n", b"\n"):
                    pass  # trailers
                self.done = True
                return b""
            self.chunk_left, self.in_chunk = size, True
        data = self._read(min(n, self.chunk_left))
        self.chunk_left -= len(data)
        return data

    def _next(self):
        return self._read_chunked(BLOCK) if self.chunked else self._read_length(BLOCK)

    def chunks(self):
        """The whole body, piece by piece: the prefix, then the rest as it
        arrives.  Once only."""
        if not self.consumed:
            self.consumed = True
            if self.prefix:
                yield self.prefix
        while True:
            data = self._next()
            if not data:
                return
            yield data

    def drain(self):
        """Reads and discards what is left of the body."""
        while self._next():
            pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"
    sys_version = ""

    # BaseHTTPRequestHandler dispatches on do_<METHOD>.
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    # -- helpers -------------------------------------------------------
    def _send(self, status, headers, body):
        self.send_response_only(status)
        seen = set()
        for k, v in headers:
            lk = k.lower()
            if lk in HOP_BY_HOP or lk == "content-length":
                continue
            seen.add(lk)
            self.send_header(k, v)
        if "date" not in seen:
            self.send_header("Date", self.date_time_string())
        if "x-amzn-requestid" not in seen:
            self.send_header("x-amzn-RequestId", _request_id())
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status, obj):
        body = (json.dumps(obj, indent=1) + "\n").encode()
        self._send(status, [("Content-Type", "application/json")], body)

    def _drop(self, rst):
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- main ----------------------------------------------------------
    def _dispatch(self):
        try:
            body = ClientBody(self.rfile, self.headers)
        except ClientGone:
            self.close_connection = True
            return
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/__faults__" or parsed.path.startswith("/__faults__/"):
            try:
                body.drain()
            except ClientGone:
                self.close_connection = True
                return
            try:
                self._control(parsed, body.prefix)
            except BadRequest as e:
                self._send_json(400, {"error": str(e)})
            return
        state = self.server.state
        info = classify(self.command, parsed.path, parsed.query, self.headers,
                        body.prefix if body.complete else b"", state)
        info["query"] = parsed.query
        rule = state.take_rule(info)
        if rule and rule.get("delayMs"):
            time.sleep(rule["delayMs"] / 1000.0)
        action = rule["action"] if rule else None
        if action in ERROR_ACTIONS:
            try:
                body.drain()
            except ClientGone:
                info["requestBytes"] = body.read_bytes
                state.record(info, 0, rule)
                self.close_connection = True
                return
            status, headers, out = fault_error(info, rule)
            info["requestBytes"] = body.read_bytes
            state.record(info, status, rule)
            self._send(status, headers, out)
            return
        if action == "stall":
            info["requestBytes"] = body.read_bytes
            state.record(info, 0, rule)
            self._stall(rule.get("seconds"))
            return
        if action == "drop" and not rule.get("forward") and \
                rule.get("dropAfterBytes") is None:
            info["requestBytes"] = body.read_bytes
            state.record(info, 0, rule)
            self._drop(rule.get("rst"))
            return
        self._forward(info, body, rule)

    def _forward(self, info, body, rule):
        """Sends the request upstream (the body as it arrives), then the answer
        back; buffers only the answers it must read or rewrite."""
        if info.get("service") == "ecr-public":
            return self._ecr_public(info, body, rule)
        state = self.server.state
        action = rule["action"] if rule else None
        drop_after = rule.get("dropAfterBytes") if action == "drop" else None
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port,
                                          timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                resp = self._send_upstream(conn, body, drop_after)
            except ClientGone:
                info["requestBytes"] = body.read_bytes
                state.record(info, 0, rule)
                self.close_connection = True
                return
            except (OSError, http.client.HTTPException) as e:
                if not body.done:  # the rest of the body is still on its way
                    self.close_connection = True
                status, headers, out = error_response(
                    {"protocol": "json" if self.headers.get("X-Amz-Target")
                     else "query"}, 502, "BadGateway",
                    "faultproxy: upstream %s unreachable: %s"
                    % (self.server.upstream_url, e))
                info["requestBytes"] = body.read_bytes
                state.record(info, status, rule)
                self._send(status, headers, out)
                return
            info["requestBytes"] = body.read_bytes
            if resp is None:  # dropAfterBytes, in the middle of the body
                info["requestBytes"] = drop_after  # forwarded; more may have come
                state.record(info, 0, rule)
                self._drop(rule.get("rst", True))
                return
            if action == "drop":  # forward: true, or a body within dropAfterBytes
                try:
                    while resp.read(BLOCK):
                        pass
                except (OSError, http.client.HTTPException):
                    pass
                state.record(info, 0, rule)
                self._drop(rule.get("rst", drop_after is not None))
                return
            learn = resp.status == 200 and (info.get("operation") or "") \
                .startswith("AssumeRole")
            if learn or action in ("expires_in", "token"):
                try:
                    out = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    out = None
                    err = e
                if out is None:
                    status, headers, out = error_response(
                        info, 502, "BadGateway",
                        "faultproxy: upstream %s failed: %s"
                        % (self.server.upstream_url, err))
                    state.record(info, status, rule)
                    self._send(status, headers, out)
                    return
                if learn:
                    learn_credentials(state, info, out)
                if action in ("expires_in", "token") and resp.status == 200:
                    out = rewrite_for(rule, out)
                rec = state.record(info, resp.status, rule)
                state.update(rec, responseBytes=len(out))
                self._send(resp.status, resp.getheaders(), out)
                return
            rec = state.record(info, resp.status, rule)
            self._stream_response(resp, rec)
        finally:
            conn.close()

    def _ecr_public(self, info, body, rule):
        """ECR Public calls: answered here (moto has no ECR Public), after the
        rules, in place of the upstream: `delay` has waited, `expires_in` and
        `token` rewrite a 200, `drop` with forward or dropAfterBytes loses the
        answer."""
        state = self.server.state
        action = rule["action"] if rule else None
        try:
            body.drain()
        except ClientGone:
            info["requestBytes"] = body.read_bytes
            state.record(info, 0, rule)
            self.close_connection = True
            return
        info["requestBytes"] = body.read_bytes
        parsed = urllib.parse.urlsplit(self.path)
        status, headers, out = ecr_public_answer(
            info, self.command, parsed.path, parsed.query, self.headers,
            body.prefix if body.complete else None, self.server.public_password)
        if action == "drop":
            state.record(info, 0, rule)
            self._drop(rule.get("rst", rule.get("dropAfterBytes") is not None))
            return
        if action in ("expires_in", "token") and status == 200:
            out = rewrite_for(rule, out)
        rec = state.record(info, status, rule)
        state.update(rec, responseBytes=len(out))
        self._send(status, headers, out)

    def _send_upstream(self, conn, body, drop_after):
        """Request line, headers and body to the upstream; returns its response,
        or None when the body was cut off after `drop_after` bytes."""
        conn.putrequest(self.command, self.path, skip_host=True,
                        skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            conn.putheader(k, v)
        chunked = False
        if body.complete:
            if body.prefix or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body.prefix)))
        elif body.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            chunked = True
        else:
            conn.putheader("Content-Length", str(body.length))
        conn.endheaders()
        sent = 0
        try:
            for data in body.chunks():
                if drop_after is not None and sent + len(data) > drop_after:
                    data = data[:drop_after - sent]
                    if data:
                        conn.send(b"%x\r\n%s\r\n" % (len(data), data)
                                  if chunked else data)
                    return None
                conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except OSError as e:
            # The upstream stopped reading: it may have answered early (a 401
            # or 413 before the body).  That answer goes to the client, and the
            # connection closes after it, as the rest of the body is unread.
            try:
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                raise e
            self.close_connection = True
            return resp
        return conn.getresponse()

    def _stream_response(self, resp, rec):
        """The upstream's answer to the client as it arrives: its headers
        unchanged, the body in the upstream's framing (Content-Length, else
        chunked, else until the connection closes)."""
        headers = resp.getheaders()
        length = None
        chunked = False
        for k, v in headers:
            if k.lower() == "content-length":
                length = v.strip()
            elif k.lower() == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
        no_body = (self.command == "HEAD" or resp.status in (204, 304)
                   or 100 <= resp.status < 200)
        mode = None
        self.send_response_only(resp.status)
        seen = set()
        for k, v in headers:
            lk = k.lower()
            if lk in HOP_BY_HOP or lk == "content-length":
                continue
            seen.add(lk)
            self.send_header(k, v)
        if "date" not in seen:
            self.send_header("Date", self.date_time_string())
        if "x-amzn-requestid" not in seen:
            self.send_header("x-amzn-RequestId", _request_id())
        if no_body:
            if length is not None:  # a HEAD's length is the GET's
                self.send_header("Content-Length", length)
        elif length is not None and not chunked:
            self.send_header("Content-Length", length)
            mode = "length"
        elif self.request_version != "HTTP/1.0":
            self.send_header("Transfer-Encoding", "chunked")
            mode = "chunked"
        else:
            self.close_connection = True
            mode = "close"
        if self.close_connection:
            self.send_header("Connection", "close")
        sent = 0
        try:
            self.end_headers()
            while mode:
                try:
                    data = resp.read(BLOCK)
                except (OSError, http.client.HTTPException):
                    # The upstream broke off: so does the client's body.
                    self._drop(True)
                    return
                if not data:
                    break
                if mode == "chunked":
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
            if mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            self.server.state.update(rec, responseBytes=sent)

    def _stall(self, seconds):
        """Holds the connection without an answer until the client closes it,
        or `seconds` pass; whatever the client sends is discarded."""
        self.close_connection = True
        deadline = None if seconds is None else time.monotonic() + seconds
        sock = self.connection
        try:
            while True:
                wait = 1.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                readable, _, _ = select.select([sock], [], [], wait)
                if readable and not sock.recv(BLOCK):
                    break  # the client closed
        except OSError:
            pass

    def _control(self, parsed, body):
        state = self.server.state
        parts = [p for p in parsed.path.split("/") if p][1:]
        method = self.command
        if parts == ["health"] and method == "GET":
            return self._send_json(200, {
                "ok": True, "upstream": self.server.upstream_url,
                "ecrPublicPassword": self.server.public_password})
        if parts == ["rules"]:
            if method == "GET":
                return self._send_json(200, {"rules": state.list_rules()})
            if method == "DELETE":
                state.delete_rules()
                return self._send_json(200, {"deleted": "all"})
            if method == "POST":
                try:
                    spec = json.loads(body or b"{}")
                except ValueError as e:
                    raise BadRequest("body is not JSON: %s" % e)
                rid = state.add_rule(spec)
                return self._send_json(200, {"id": rid})
        if len(parts) == 2 and parts[0] == "rules" and method == "DELETE":
            if state.delete_rules(parts[1]):
                return self._send_json(200, {"deleted": parts[1]})
            return self._send_json(404, {"error": "no rule %s" % parts[1]})
        if parts == ["calls"]:
            if method == "GET":
                filters = urllib.parse.parse_qs(parsed.query,
                                                keep_blank_values=True)
                calls = state.query_calls(filters)
                return self._send_json(200, {"calls": calls,
                                             "count": len(calls)})
            if method == "DELETE":
                state.reset_calls()
                return self._send_json(200, {"deleted": "all"})
        if parts == ["issued"] and method == "GET":
            root = urllib.parse.parse_qs(parsed.query).get("accessKeyId", [""])[0]
            return self._send_json(200, {"secrets": state.issued_from(root)})
        self._send_json(404, {"error": "unknown control endpoint %s %s"
                              % (method, parsed.path)})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True,
                    help="base URL of the emulator, e.g. http://127.0.0.1:5000")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--public-password", default=DEFAULT_PUBLIC_PASSWORD,
                    help="password in the ECR Public stand-in's tokens "
                    "(default %(default)s)")
    args = ap.parse_args(argv)
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or not up.hostname or not up.port:
        ap.error("--upstream must look like http://HOST:PORT")
    srv = Server((args.listen, args.port), Handler)
    srv.state = State()
    srv.upstream = up
    srv.upstream_url = args.upstream.rstrip("/")
    srv.public_password = args.public_password
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    sys.stderr.write("faultproxy listening on %s:%d -> %s\n"
                     % (args.listen, port, srv.upstream_url))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
