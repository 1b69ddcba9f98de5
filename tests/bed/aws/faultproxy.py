#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for the ecr-operator test bed (Python 3 stdlib only).

It sits in front of one AWS emulator (moto) and forwards every request to it
unchanged: method, path, query string, headers (including the original Host
header, so SigV4 signatures still verify at moto) and body.  Tests point the
AWS SDK at the proxy and drive it through a small JSON control API to inject
throttling, access denials, server errors, latency, token expiries and
dropped connections, and to count the calls the code under test made.

Usage:
    faultproxy.py --upstream http://127.0.0.1:PORT [--listen 127.0.0.1]
                  [--port 0] [--port-file FILE]

With --port 0 the kernel picks a free port; the port actually bound is written
to --port-file (atomically) once the proxy accepts connections.

Classification of each request
------------------------------
- accessKeyId: from `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/
  <region>/<service>/aws4_request, ...` (or a presigned `X-Amz-Credential`
  query parameter); null when the request is unsigned.
- region: from the same credential scope; null when unsigned.
- service: `ecr` when `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`;
  otherwise the credential scope's service (`sts`, `iam`, ...); an unsigned
  request with a form `Action=` is taken as `sts` (AssumeRoleWithWebIdentity
  is unsigned); requests to moto's own `/moto-api/...` are `moto-api`.
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
GET    /__faults__/health       {"ok": true, "upstream": "..."}

A rule:
    {"match": {"accessKeyId": "AKIA...", "service": "ecr",
               "operation": "GetAuthorizationToken", "region": "us-east-1",
               "roleArn": "arn:aws:iam::123456789012:role/x"},
     "action": "throttle", "count": 2}

- Every match field is optional (absent or null = any).  A value may be a
  string (exact, case-sensitive) or a list of strings (any of them).  Unknown
  match fields or actions are rejected with HTTP 400 so typos fail loudly.
- `count` (optional): the rule applies to that many matching requests, then
  stays listed with remaining=0 and no longer matches.  Absent = forever.
- Rules are tried in the order they were added; the first live matching rule
  decides (one rule per request).  Scope rules by accessKeyId (or roleArn) so
  tests running in parallel against one proxy don't disturb each other.
- `delayMs` (optional, any action): sleep that long before acting.
- `status`, `code`, `message` (optional, error actions): override the HTTP
  status, the error code and the message.

Actions:
- "throttle":      awsJson (ECR): HTTP 400, header x-amzn-ErrorType:
                   ThrottlingException, body {"__type":"ThrottlingException",
                   "message":"Rate exceeded"}.  awsQuery (STS, IAM): HTTP 400,
                   XML ErrorResponse with Code Throttling.
- "access_denied": awsJson: 400 AccessDeniedException; awsQuery: 403 AccessDenied.
- "server_error":  default HTTP 500 with code InternalFailure; with "status": 503
                   the code is ServiceUnavailable.  Body in the service's format.
- "error":         any error: requires "status" and "code".
- "delay":         sleep "delayMs" milliseconds, then forward normally.
- "expires_in":    forward, then rewrite every authorizationData[].expiresAt of
                   a successful GetAuthorizationToken JSON response to
                   now + "seconds" (epoch seconds; may be negative or 0).
- "drop":          close the connection without any response (a network
                   failure).  The request is not forwarded, unless
                   "forward": true (then the upstream handles it and only the
                   response is lost).  "rst": true resets the connection
                   (TCP RST) instead of closing it cleanly.
- "rate_limit":    an account's request rate limit: at most "perSecond"
                   matching requests in any second pass (to the next rule or
                   upstream); the others are throttled as "throttle" does.

Every response the proxy generates carries an x-amzn-RequestId header.  The
error formats are the ones the AWS SDKs parse: awsJson1_1 (`__type` plus the
x-amzn-ErrorType header) and awsQuery (`<ErrorResponse><Error><Type/><Code/>
<Message/></Error><RequestId/></ErrorResponse>`).

Call records: {"seq", "time" (epoch seconds, float, when the request arrived),
"method", "path", "service", "operation", "accessKeyId", "region", "roleArn",
"sourceAccessKeyId", "status" (HTTP status sent to the client; 0 = dropped,
502 = upstream unreachable), "fault" (the rule id applied, or null),
"action" (its action, or null)}.  A call is recorded before its response is
written, so once a client has its answer the record is visible.
"""

import argparse
import http.client
import http.server
import itertools
import json
import os
import re
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
MATCH_FIELDS = ("accessKeyId", "service", "operation", "region", "roleArn")
ACTIONS = ("throttle", "access_denied", "server_error", "error", "delay",
           "expires_in", "drop", "rate_limit")
RECORD_FIELDS = ("seq", "time", "method", "path", "service", "operation",
                 "accessKeyId", "region", "roleArn", "sourceAccessKeyId",
                 "status", "fault", "action")
MAX_CALLS = 200000


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

    # -- rules ---------------------------------------------------------
    def add_rule(self, spec):
        if not isinstance(spec, dict):
            raise BadRequest("rule must be a JSON object")
        known = {"match", "action", "count", "delayMs", "seconds", "status",
                 "code", "message", "forward", "rst", "perSecond"}
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
                continue
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                continue
            raise BadRequest("match.%s must be a string or list of strings" % k)
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
            if not isinstance(spec.get("seconds"), (int, float)):
                raise BadRequest("action expires_in needs numeric seconds")
        if action == "rate_limit" and not (isinstance(spec.get("perSecond"), int)
                                           and spec["perSecond"] > 0):
            raise BadRequest("action rate_limit needs a positive integer perSecond")
        if action == "error" and not (isinstance(spec.get("status"), int)
                                      and isinstance(spec.get("code"), str)):
            raise BadRequest("action error needs integer status and string code")
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
            self.rules.append(rule)
            return rule["id"]

    def list_rules(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def delete_rules(self, rule_id=None):
        with self.lock:
            if rule_id is None:
                self.rules = []
                return True
            before = len(self.rules)
            self.rules = [r for r in self.rules if r["id"] != rule_id]
            return len(self.rules) != before

    def take_rule(self, info):
        """First live rule matching info; counts the hit atomically."""
        with self.lock:
            for rule in self.rules:
                if rule["remaining"] is not None and rule["remaining"] <= 0:
                    continue
                if not all(_field_matches(want, info.get(k))
                           for k, want in rule["match"].items()):
                    continue
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
        rec = {k: info.get(k) for k in RECORD_FIELDS}
        rec["status"] = status
        rec["fault"] = rule["id"] if rule else None
        rec["action"] = rule["action"] if rule else None
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
            calls = list(self.calls)
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


def _field_matches(want, have):
    if isinstance(want, list):
        return have in want
    return have == want


def _request_id():
    return str(uuid.uuid4())


def classify(method, path, query, headers, body, state):
    info = {"time": time.time(), "method": method, "path": path, "service": None,
            "operation": None, "accessKeyId": None, "region": None,
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
    target = headers.get("X-Amz-Target")
    ctype = (headers.get("Content-Type") or "").lower()
    if target:
        info["protocol"] = "json"
        info["operation"] = target.rsplit(".", 1)[-1]
        if target.startswith(ECR_TARGET_PREFIX):
            info["service"] = "ecr"
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
        code = rule["code"]
        message = "Injected error"
    status = rule.get("status", status)
    code = rule.get("code", code)
    message = rule.get("message", message)
    return error_response(info, status, code, message)


def rewrite_expiry(body, seconds):
    try:
        doc = json.loads(body)
    except Exception:
        return body
    data = doc.get("authorizationData") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return body
    when = int(time.time() + seconds)
    for entry in data:
        if isinstance(entry, dict):
            entry["expiresAt"] = when
    return json.dumps(doc).encode()


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
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

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
        body = self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/__faults__" or parsed.path.startswith("/__faults__/"):
            try:
                self._control(parsed, body)
            except BadRequest as e:
                self._send_json(400, {"error": str(e)})
            return
        state = self.server.state
        info = classify(self.command, parsed.path, parsed.query, self.headers,
                        body, state)
        rule = state.take_rule(info)
        if rule and rule.get("delayMs"):
            time.sleep(rule["delayMs"] / 1000.0)
        action = rule["action"] if rule else None
        if action in ("throttle", "rate_limit", "access_denied", "server_error", "error"):
            status, headers, out = fault_error(info, rule)
            state.record(info, status, rule)
            self._send(status, headers, out)
            return
        if action == "drop" and not rule.get("forward"):
            state.record(info, 0, rule)
            self._drop(rule.get("rst"))
            return
        status, headers, out = self._forward(body)
        if status == 200 and info.get("operation", "") and \
                info["operation"].startswith("AssumeRole"):
            learn_credentials(state, info, out)
        if action == "expires_in" and status == 200:
            out = rewrite_expiry(out, rule["seconds"])
        if action == "drop":
            state.record(info, 0, rule)
            self._drop(rule.get("rst"))
            return
        state.record(info, status, rule)
        self._send(status, headers, out)

    def _forward(self, body):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True,
                            skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            out = resp.read()
            return resp.status, resp.getheaders(), out
        except (OSError, http.client.HTTPException) as e:
            info = {"protocol": "json" if self.headers.get("X-Amz-Target")
                    else "query"}
            return error_response(info, 502, "BadGateway",
                                  "faultproxy: upstream %s unreachable: %s"
                                  % (self.server.upstream_url, e))
        finally:
            conn.close()

    def _control(self, parsed, body):
        state = self.server.state
        parts = [p for p in parsed.path.split("/") if p][1:]
        method = self.command
        if parts == ["health"] and method == "GET":
            return self._send_json(200, {"ok": True,
                                         "upstream": self.server.upstream_url})
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
    args = ap.parse_args(argv)
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or not up.hostname or not up.port:
        ap.error("--upstream must look like http://HOST:PORT")
    srv = Server((args.listen, args.port), Handler)
    srv.state = State()
    srv.upstream = up
    srv.upstream_url = args.upstream.rstrip("/")
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
