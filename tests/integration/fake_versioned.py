"""A versioned S3 backend test double for what s3rver lacks (bucket versioning, partNumber reads, the
multipart listings): GET/HEAD/DELETE of objects by versionId, GET/HEAD ?partNumber=N of objects stored
with a part size, Range, If-Match / If-None-Match; Get/PutBucketVersioning, ListObjectVersions,
GetBucketLocation; CreateMultipartUpload, UploadPart, ListParts, ListMultipartUploads,
AbortMultipartUpload, CompleteMultipartUpload. It checks no signatures and implements nothing else; it
counts the requests it gets. Tests use it only where s3rver cannot stand in."""
import email.utils
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class FakeVersionedBackend:
    def __init__(self):
        self.versions = {}  # (bucket, key) -> [(version id, bytes, last-modified)], oldest first
        self.part_sizes = {}  # (bucket, key, version id) -> part size of a "multipart" object
        self.requests = []  # (method, path, query dict, range)
        self.versioning = {}  # bucket -> "Enabled" / "Suspended"
        self.uploads = {}  # upload id -> (bucket, key, {part number: bytes}, initiated)
        self.lock = threading.Lock()
        self._next = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if not owner._subresource(self):
                    owner._serve(self, body=True)

            def do_PUT(self):
                owner._subresource(self) or owner._error(self, 501, "NotImplemented")

            def do_POST(self):
                owner._subresource(self) or owner._error(self, 501, "NotImplemented")

            def do_HEAD(self):
                owner._serve(self, body=False)

            def do_DELETE(self):
                if not owner._subresource(self):
                    owner._delete(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def put(self, bucket, key, data, part_size=None):
        """Adds a new (latest) version, as if uploaded in parts of `part_size` when given; returns its id."""
        with self.lock:
            self._next += 1
            vid = "v%04d" % self._next
            self.versions.setdefault((bucket, key), []).append((vid, data, email.utils.formatdate(usegmt=True)))
            if part_size:
                self.part_sizes[(bucket, key, vid)] = part_size
            return vid

    def count(self, method=None):
        with self.lock:
            return sum(1 for r in self.requests if method is None or r[0] == method)

    def reset(self):
        with self.lock:
            self.requests = []

    def stop(self):
        self.server.shutdown()

    def _find(self, h):
        u = urlsplit(h.path)
        parts = unquote(u.path).lstrip("/").split("/", 1)
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append((h.command, u.path, q, h.headers.get("Range")))
            versions = self.versions.get((parts[0], parts[1] if len(parts) > 1 else ""), [])
            if "versionId" in q:
                found = [v for v in versions if v[0] == q["versionId"]]
                return (found[0] if found else None), q, ("NoSuchVersion" if versions else "NoSuchKey")
            return (versions[-1] if versions else None), q, "NoSuchKey"

    @staticmethod
    def _error(h, status, code, body=True):
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>"
               % (code, code)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(xml)))
        h.end_headers()
        if body:
            h.wfile.write(xml)

    def _etag(self, h, vid, data):
        """S3's ETag: the MD5 of the bytes, or for an object stored with a part size (uploaded in parts)
        the MD5 of its parts' MD5s followed by "-<part count>"."""
        bucket, key = unquote(urlsplit(h.path).path).lstrip("/").split("/", 1)
        size = self.part_sizes.get((bucket, key, vid))
        if not size:
            return '"%s"' % hashlib.md5(data).hexdigest()
        parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))

    def _serve(self, h, body):
        found, q, missing = self._find(h)
        if found is None:
            return self._error(h, 404, missing, body)
        vid, data, modified = found
        etag = self._etag(h, vid, data)
        im, inm = h.headers.get("If-Match"), h.headers.get("If-None-Match")
        if im and im != etag:
            return self._error(h, 412, "PreconditionFailed", body)
        if inm and inm == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        status, first, last = 200, 0, len(data) - 1
        parts = None
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
        if "partNumber" in q:
            u = urlsplit(h.path)
            bucket, key = unquote(u.path).lstrip("/").split("/", 1)
            size = self.part_sizes.get((bucket, key, vid), len(data) or 1)
            parts = max(1, -(-len(data) // size))
            n = int(q["partNumber"])
            if n < 1 or n > parts:
                return self._error(h, 416, "InvalidPartNumber", body)  # S3's status for a part past the count
            status, first, last, m = 206, (n - 1) * size, min(n * size, len(data)) - 1, None
        if m and len(data):
            status, first = 206, int(m.group(1))
            last = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        h.send_response(status)
        h.send_header("ETag", etag)
        h.send_header("Last-Modified", modified)
        h.send_header("x-amz-version-id", vid)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(last - first + 1 if len(data) else 0))
        if status == 206:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, len(data)))
        if parts:
            h.send_header("x-amz-mp-parts-count", str(parts))
        h.end_headers()
        if body:
            h.wfile.write(data[first:last + 1])

    def _delete(self, h):
        u = urlsplit(h.path)
        parts = unquote(u.path).lstrip("/").split("/", 1)
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(("DELETE", u.path, q, None))
            versions = self.versions.get((parts[0], parts[1]), [])
            if "versionId" in q:
                versions[:] = [v for v in versions if v[0] != q["versionId"]]
        h.send_response(204)
        h.send_header("x-amz-version-id", q.get("versionId", ""))
        h.send_header("Content-Length", "0")
        h.end_headers()

    # Bucket subresources and multipart uploads.
    NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

    @staticmethod
    def _xml(h, status, body):
        data = ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _empty(h, status, headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _subresource(self, h):
        """Answers the bucket subresources and multipart requests; False for plain object requests."""
        u = urlsplit(h.path)
        parts = unquote(u.path).lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if not any(k in q for k in ("versioning", "versions", "location", "uploads", "uploadId")):
            return False
        with self.lock:
            self.requests.append((h.command, u.path, q, h.headers.get("Range")))
            m = h.command
            if "versioning" in q and m == "PUT":
                state = re.search(rb"<Status>(\w+)</Status>", body)
                self.versioning[bucket] = state.group(1).decode() if state else "Suspended"
                self._empty(h, 200)
            elif "versioning" in q:
                st = self.versioning.get(bucket)
                self._xml(h, 200, "<VersioningConfiguration %s>%s</VersioningConfiguration>"
                          % (self.NS, "<Status>%s</Status>" % st if st else ""))
            elif "location" in q:
                self._xml(h, 200, "<LocationConstraint %s>eu-west-1</LocationConstraint>" % self.NS)
            elif "versions" in q:
                prefix = q.get("prefix", "")
                out = ["<ListVersionsResult %s><Name>%s</Name><Prefix>%s</Prefix><KeyMarker></KeyMarker>"
                       "<VersionIdMarker></VersionIdMarker><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
                       % (self.NS, bucket, prefix)]
                for (b, k), vs in sorted(self.versions.items()):
                    if b != bucket or not k.startswith(prefix):
                        continue
                    for i, (vid, data, modified) in reversed(list(enumerate(vs))):
                        out.append("<Version><Key>%s</Key><VersionId>%s</VersionId><IsLatest>%s</IsLatest>"
                                   "<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"%s\"</ETag>"
                                   "<Size>%d</Size><StorageClass>STANDARD</StorageClass></Version>"
                                   % (k, vid, "true" if i == len(vs) - 1 else "false",
                                      hashlib.md5(data).hexdigest(), len(data)))
                out.append("</ListVersionsResult>")
                self._xml(h, 200, "".join(out))
            elif "uploads" in q and m == "POST":
                self._next += 1
                uid = "fake-upload-%d" % self._next
                self.uploads[uid] = (bucket, key, {}, "2026-01-01T00:00:00.000Z")
                self._xml(h, 200, "<InitiateMultipartUploadResult %s><Bucket>%s</Bucket><Key>%s</Key>"
                          "<UploadId>%s</UploadId></InitiateMultipartUploadResult>" % (self.NS, bucket, key, uid))
            elif "uploads" in q:
                prefix = q.get("prefix", "")
                out = ["<ListMultipartUploadsResult %s><Bucket>%s</Bucket><KeyMarker></KeyMarker>"
                       "<UploadIdMarker></UploadIdMarker><Prefix>%s</Prefix><MaxUploads>%s</MaxUploads>"
                       "<IsTruncated>false</IsTruncated>" % (self.NS, bucket, prefix, q.get("max-uploads", "1000"))]
                for uid, (b, k, _, initiated) in sorted(self.uploads.items(), key=lambda kv: kv[1][1]):
                    if b == bucket and k.startswith(prefix):
                        out.append("<Upload><Key>%s</Key><UploadId>%s</UploadId><StorageClass>STANDARD</StorageClass>"
                                   "<Initiated>%s</Initiated></Upload>" % (k, uid, initiated))
                out.append("</ListMultipartUploadsResult>")
                self._xml(h, 200, "".join(out))
            else:  # uploadId
                up = self.uploads.get(q["uploadId"])
                if up is None or up[:2] != (bucket, key):
                    self._error(h, 404, "NoSuchUpload")
                elif m == "PUT":
                    up[2][int(q["partNumber"])] = body
                    self._empty(h, 200, [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
                elif m == "GET":
                    out = ["<ListPartsResult %s><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>"
                           "<PartNumberMarker>0</PartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>"
                           % (self.NS, bucket, key, q["uploadId"])]
                    for n, data in sorted(up[2].items()):
                        out.append("<Part><PartNumber>%d</PartNumber><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                                   "<ETag>\"%s\"</ETag><Size>%d</Size></Part>" % (n, hashlib.md5(data).hexdigest(), len(data)))
                    out.append("</ListPartsResult>")
                    self._xml(h, 200, "".join(out))
                elif m == "DELETE":
                    del self.uploads[q["uploadId"]]
                    self._empty(h, 204)
                else:  # POST: complete with every part named, in order
                    nums = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
                    data = b"".join(up[2][n] for n in nums)
                    digest = hashlib.md5(b"".join(hashlib.md5(up[2][n]).digest() for n in nums)).hexdigest()
                    etag = '"%s-%d"' % (digest, len(nums))
                    del self.uploads[q["uploadId"]]
                    self._next += 1
                    vid = "v%04d" % self._next
                    self.versions.setdefault((bucket, key), []).append(
                        (vid, data, email.utils.formatdate(usegmt=True)))
                    self._xml(h, 200, "<CompleteMultipartUploadResult %s><Location>http://x/%s/%s</Location>"
                              "<Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>"
                              % (self.NS, bucket, key, bucket, key, etag))
        return True
