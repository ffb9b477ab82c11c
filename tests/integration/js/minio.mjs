// The MinIO JavaScript client through Granary: put (single and multipart), stat, get, range, list, remove.
//   node minio.mjs HOST PORT ACCESS_KEY SECRET_KEY BUCKET     (exit status 0 = every check passed)
import { createHash } from 'node:crypto';
import * as Minio from 'minio';

const [endPoint, port, accessKey, secretKey, bucket] = process.argv.slice(2);
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

const names = [];
for await (const o of mc.listObjectsV2(bucket, 'mc/', true)) names.push(o.name);
check(names.join(',') === 'mc/big,mc/small', 'list: ' + names);
await mc.removeObjects(bucket, names);
const left = [];
for await (const o of mc.listObjectsV2(bucket, 'mc/', true)) left.push(o.name);
check(left.length === 0, 'remove objects');
