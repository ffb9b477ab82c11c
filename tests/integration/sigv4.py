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


def sign(method, host, path, query, headers, payload_hash, access_key, secret, when=None, region="us-east-1"):
    """path: decoded key path ("/bucket/key"); query: list of (name, value). Returns Signed with the
    wire path and query and all headers (Authorization included)."""
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
    scope = "%s/%s/s3/aws4_request" % (date, region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret, date, region)
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
