// The AWS SDK for JavaScript v3 through Granary: its defaults (trailing CRC32 checksums on uploads,
// aws-chunked bodies), multipart through lib-storage, listings, copy, multi-delete, conditional GET.
//   node sdk_v3.mjs ENDPOINT ACCESS_KEY SECRET_KEY BUCKET     (exit status 0 = every check passed)
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, CopyObjectCommand,
  DeleteObjectsCommand, CreateBucketCommand, PutObjectTaggingCommand, GetObjectTaggingCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [endpoint, accessKeyId, secretAccessKey, bucket] = process.argv.slice(2);
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
                          maxAttempts: 1 });
const md5 = (b) => createHash('md5').update(b).digest('hex');
const bytes = (n, seed) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff; return b; };
const body = async (r) => Buffer.from(await r.Body.transformToByteArray());
function check(cond, what) { if (!cond) { console.error('FAILED: ' + what); process.exit(1); } console.log('ok: ' + what); }

await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e) => { if (e.name !== 'BucketAlreadyOwnedByYou') throw e; });
const small = bytes(100_000, 1);
await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'js/small', Body: small }));  // default: CRC32 in a trailer
check(md5(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/small' })))) === md5(small), 'put + get (default checksums)');

const streamed = bytes(3 << 20, 2);  // a stream of unknown length: aws-chunked, streamed upstream
await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'js/streamed', Body: Readable.from([streamed]), ContentLength: streamed.length }));
check(md5(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/streamed' })))) === md5(streamed), 'streamed put');

const big = bytes(12 << 20, 3);
await new Upload({ client: s3, params: { Bucket: bucket, Key: 'js/multipart', Body: big }, partSize: 5 << 20 }).done();
const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'js/multipart' }));
check(head.ContentLength === big.length, 'lib-storage multipart upload');
check(md5(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/multipart' })))) === md5(big), 'multipart read back');
const range = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/multipart', Range: 'bytes=5242870-5242889' })));
check(range.equals(big.subarray(5242870, 5242890)), 'range across a part boundary');

await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'js/copy', CopySource: `${bucket}/js/small` }));
check(md5(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/copy' })))) === md5(small), 'copy');

await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'js/small', Tagging: { TagSet: [{ Key: 'team', Value: 'ml' }] } }));
const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'js/small' }));
check(tags.TagSet.length === 1 && tags.TagSet[0].Value === 'ml', 'tagging');

let notModified = false;
try {
  await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'js/small', IfNoneMatch: head.ETag === undefined ? '*' : (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'js/small' }))).ETag }));
} catch (e) { notModified = e.$metadata?.httpStatusCode === 304; }
check(notModified, 'If-None-Match -> 304');

const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'js/' }));
check(listed.Contents.map((o) => o.Key).join(',') === 'js/copy,js/multipart,js/small,js/streamed', 'list: ' + listed.Contents.map((o) => o.Key));
const del = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: listed.Contents.map((o) => ({ Key: o.Key })) } }));
check((del.Deleted || []).length === 4 && !(del.Errors || []).length, 'multi-delete');
const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'js/' }));
check(!after.Contents || after.Contents.length === 0, 'nothing left');
