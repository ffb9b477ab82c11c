// The MinIO JavaScript client through Granary: put (single and multipart), stat, get, range, list, remove.
//   node minio.mjs HOST PORT ACCESS_KEY SECRET_KEY BUCKET [multipart]   (exit status 0 = every check passed)
// With "multipart", a 12 MiB object is also put in 5 MiB parts: the client first lists the bucket's
// multipart uploads (ListMultipartUploads) to resume one, so this needs a backend, or a write-back
// bucket, that answers that listing.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import * as Minio from 'minio';

const [endPoint, port, accessKey, secretKey, bucket, mode] = process.argv.slice(2);
const mc = new Minio.Client({ endPoint, port: Number(port), useSSL: false, accessKey, secretKey, region: 'us-east-1',
                              pathStyle: true, partSize: 5 << 20 });
const md5 = (b) => createHash('md5').update(b).digest('hex');
const bytes = (n, seed) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 17 + seed) & 0xff; return b; };
async function read(stream) { const parts = []; for await (const c of stream) parts.push(c); return Buffer.concat(parts); }
function check(cond, what) { if (!cond) { console.error('FAILED: ' + what); process.exit(1); } console.log('ok: ' + what); }

if (!(await mc.bucketExists(bucket))) await mc.makeBucket(bucket, 'us-east-1');
const small = bytes(50_000, 1);
await mc.putObject(bucket, 'mc/small', small, small.length, { 'Content-Type': 'text/x-test' });
const st = await mc.statObject(bucket, 'mc/small');
check(st.size === small.length && st.metaData['content-type'] === 'text/x-test', 'stat');
check(md5(await read(await mc.getObject(bucket, 'mc/small'))) === md5(small), 'get');
const part = await read(await mc.getPartialObject(bucket, 'mc/small', 1000, 10));
check(part.equals(small.subarray(1000, 1010)), 'partial get');

// Objects over partSize: the client first looks for an upload to resume (ListMultipartUploads), which
// s3rver does not implement (501), so only single-part puts are tried against it.
const big = bytes(5 << 20, 2);
await mc.putObject(bucket, 'mc/big', big, big.length);
check(md5(await read(await mc.getObject(bucket, 'mc/big'))) === md5(big), '5 MiB read back');

const expected = ['mc/big', 'mc/small'];
if (mode === 'multipart') {
  const huge = bytes((12 << 20) + 5, 3);
  // (A stream of 1 MiB pieces: the client puts a Buffer in one request whatever its size.)
  const pieces = [];
  for (let at = 0; at < huge.length; at += 1 << 20) pieces.push(huge.subarray(at, at + (1 << 20)));
  const put = await mc.putObject(bucket, 'mc/huge', Readable.from(pieces), huge.length);
  check(/-3$/.test(put.etag), 'multipart put of 12 MiB in 3 parts: ETag ' + put.etag);
  check(md5(await read(await mc.getObject(bucket, 'mc/huge'))) === md5(huge), '12 MiB read back');
  const tail = await read(await mc.getPartialObject(bucket, 'mc/huge', (10 << 20) - 3, 10));
  check(tail.equals(huge.subarray((10 << 20) - 3, (10 << 20) + 7)), 'range across a part boundary');
  expected.push('mc/huge');
}
const names = [];
for await (const o of mc.listObjectsV2(bucket, 'mc/', true)) names.push(o.name);
check(names.join(',') === expected.sort().join(','), 'list: ' + names);
await mc.removeObjects(bucket, names);
const left = [];
for await (const o of mc.listObjectsV2(bucket, 'mc/', true)) left.push(o.name);
check(left.length === 0, 'remove objects');
