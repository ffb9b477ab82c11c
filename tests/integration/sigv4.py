"""A small independent SigV4 signer for requests no SDK will make on demand (skewed clocks, aws-chunked
streaming with chunk signatures, tampered bodies). Cross-checked against botocore in test_auth."""
import datetime
import hashlib
import hmac
import urllib.parse

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region="us-east-1", service="s3"):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def quote(s, safe="/"):
    return urllib.parse.quote(s, safe=safe + "-_.~")


class Signed:
    def __init__(self, headers, path, query, key, scope, amz_date, signature):
        self.headers, self.path, self.query = headers, path, query
        self.key, self.scope, self.amz_date, self.signature = key, scope, amz_date, signature


def sign(method, host, path, query, headers, payload_hash, access_key, secret, when=None, region="us-east-1",
         service="s3"):
    """path: decoded key path ("/bucket/key"); query: list of (name, value). Returns Signed with the
    wire path and query and all headers (Authorization included). `region` and `service` name the
    credential scope (a wrong one is how tests provoke scope errors)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    hs = {k.lower(): str(v) for k, v in headers.items()}
    hs["host"] = host
    hs["x-amz-date"] = amz_date
    hs["x-amz-content-sha256"] = payload_hash
    names = sorted(hs)
    canonical_headers = "".join("%s:%s\n" % (n, " ".join(hs[n].split())) for n in names)
    wire_path = quote(path)
    cq = "&".join("%s=%s" % (quote(k, ""), quote(v, "")) for k, v in sorted(query))
    creq = "\n".join([method, wire_path, cq, canonical_headers, ";".join(names), payload_hash])
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret, date, region, service)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    hs["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, ";".join(names), sig)
    return Signed(hs, wire_path, cq, key, scope, amz_date, sig)


def aws_chunked(payload, chunk_size, signed=None, trailer=None):
    """Encodes payload as aws-chunked. `signed`: a Signed whose signature seeds the chunk chain.
    `trailer`: list of (name, value) trailing headers (signed when `signed`)."""
    out, prev = [], signed.signature if signed else None

    def header(data):
        nonlocal prev
        h = "%x" % len(data)
        if signed:
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", signed.amz_date, signed.scope, prev, EMPTY_SHA256,
                             hashlib.sha256(data).hexdigest()])
            prev = hmac.new(signed.key, sts.encode(), hashlib.sha256).hexdigest()
            h += ";chunk-signature=" + prev
        return (h + "\r\n").encode()

    for off in range(0, len(payload), chunk_size):
        data = payload[off:off + chunk_size]
        out += [header(data), data, b"\r\n"]
    out.append(header(b""))
    if trailer:
        canonical = "".join("%s:%s\n" % (k, v) for k, v in trailer)
        out += [("%s:%s\r\n" % (k, v)).encode() for k, v in trailer]
        if signed:
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", signed.amz_date, signed.scope, prev,
                             hashlib.sha256(canonical.encode()).hexdigest()])
            out.append(("x-amz-trailer-signature:%s\r\n" % hmac.new(signed.key, sts.encode(), hashlib.sha256).hexdigest()).encode())
    out.append(b"\r\n")
    return b"".join(out)


class Presigned:
    """A presigned request: `target` is the wire path and query ("/b/k?X-Amz-..."); `headers` the
    headers that were signed and must be sent as they are (host included)."""

    def __init__(self, target, path, query, headers, signature):
        self.target, self.path, self.query, self.headers, self.signature = target, path, query, headers, signature


def presign(method, host, path, query, access_key, secret, expires=300, headers=None, when=None,
            region="us-east-1", service="s3", payload_hash="UNSIGNED-PAYLOAD"):
    """SigV4 query authentication (a presigned URL). path: decoded key path; query: list of (name, value)
    of the request's own parameters; headers: extra headers to sign besides host (the client must send
    them). The payload is UNSIGNED-PAYLOAD, as every SDK presigns."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    hs = {k.lower(): str(v) for k, v in (headers or {}).items()}
    hs["host"] = host
    names = sorted(hs)
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    params = list(query) + [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                            ("X-Amz-Credential", "%s/%s" % (access_key, scope)),
                            ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)),
                            ("X-Amz-SignedHeaders", ";".join(names))]
    cq = "&".join("%s=%s" % (quote(k, ""), quote(v, "")) for k, v in sorted(params))
    canonical_headers = "".join("%s:%s\n" % (n, " ".join(hs[n].split())) for n in names)
    wire_path = quote(path)
    creq = "\n".join([method, wire_path, cq, canonical_headers, ";".join(names), payload_hash])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, date, region, service), sts.encode(), hashlib.sha256).hexdigest()
    full = cq + "&X-Amz-Signature=" + sig
    return Presigned(wire_path + "?" + full, wire_path, full, hs, sig)


# SigV2 (HMAC-SHA1): the parameters that belong to the canonical resource, as S3 defines them.
V2_SUBRESOURCES = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore", "tagging", "torrent",
    "uploadId", "uploads", "versionId", "versioning", "versions", "website", "replication", "accelerate",
    "encryption", "inventory", "metrics", "select"}


def v2_string_to_sign(method, wire_path, query, headers, date_or_expires):
    """wire_path: the path as sent (percent-encoded); query: list of (name, decoded value); headers: the
    headers that will be sent (names any case)."""
    hs = {}
    for k, v in headers.items():
        hs.setdefault(k.lower(), []).append(" ".join(str(v).split()))
    amz = "".join("%s:%s\n" % (n, ",".join(hs[n])) for n in sorted(hs) if n.startswith("x-amz-"))
    sub = sorted((k, v) for k, v in query if k in V2_SUBRESOURCES)
    resource = wire_path
    if sub:
        resource += "?" + "&".join(k + ("=" + v if v != "" else "") for k, v in sub)
    return "%s\n%s\n%s\n%s\n%s%s" % (method, hs.get("content-md5", [""])[0], hs.get("content-type", [""])[0],
                                     date_or_expires, amz, resource)


def _v2_signature(secret, sts):
    import base64
    return base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()


def sign_v2(method, path, query, headers, access_key, secret, when=None):
    """SigV2 header authentication. path: decoded key path; query: list of (name, value). Returns
    (wire target, headers with Date and Authorization added)."""
    import email.utils
    when = when or datetime.datetime.now(datetime.timezone.utc)
    hs = dict(headers)
    hs["Date"] = email.utils.format_datetime(when.astimezone(datetime.timezone.utc), usegmt=True)
    wire_path = quote(path)
    sts = v2_string_to_sign(method, wire_path, query, hs, hs["Date"])
    hs["Authorization"] = "AWS %s:%s" % (access_key, _v2_signature(secret, sts))
    target = wire_path + ("?" + "&".join("%s=%s" % (quote(k, ""), quote(v, "")) if v != "" else quote(k, "")
                                         for k, v in query) if query else "")
    return target, hs


def presign_v2(method, path, query, access_key, secret, expires_in=300, headers=None):
    """SigV2 query authentication (AWSAccessKeyId, Expires, Signature). headers: x-amz-* and
    Content-Type/MD5 headers the client will send (they are part of the string to sign). Returns the
    wire target."""
    import time
    expires = str(int(time.time()) + expires_in)
    wire_path = quote(path)
    sts = v2_string_to_sign(method, wire_path, query, headers or {}, expires)
    params = list(query) + [("AWSAccessKeyId", access_key), ("Expires", expires),
                            ("Signature", _v2_signature(secret, sts))]
    return wire_path + "?" + "&".join("%s=%s" % (quote(k, ""), quote(v, "")) for k, v in params)
