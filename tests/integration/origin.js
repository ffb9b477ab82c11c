// s3rver with an access key of its own instead of its built-in S3RVER one:
//   node --openssl-legacy-provider origin.js ACCESS_KEY SECRET_KEY <s3rver arguments...>
// s3rver then refuses any other key (InvalidAccessKeyId), so a test with two origins can tell which
// credentials reached which. (s3rver 3.7 checks the key id of a SigV4 request, not its signature.)
'use strict';
const path = require('path');

const root = path.join(__dirname, '..', '..', 'node_modules', 's3rver');
const Account = require(path.join(root, 'lib', 'models', 'account'));

const [accessKey, secretKey] = process.argv.splice(2, 2);
if (!accessKey || !secretKey) {
  console.error('usage: origin.js ACCESS_KEY SECRET_KEY <s3rver arguments>');
  process.exit(2);
}
Account.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
Account.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
require(path.join(root, 'bin', 's3rver.js'));
