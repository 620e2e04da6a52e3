/**
 * An S3-compatible server for tests (DESIGN.md §5): the npm package s3rver in
 * a child process, on an ephemeral port, over a fresh temp folder, with one
 * bucket made before it answers.
 *
 * Why a child process: s3rver encrypts ListObjectsV2 continuation tokens with
 * DES, which OpenSSL 3 only offers under `--openssl-legacy-provider`, a flag
 * of the whole node process. The test runner's workers do not have it (and
 * the code under test should not run with it), so the server gets its own
 * process. Without the flag every paged listing fails.
 *
 * Clients must use path-style URLs and the credentials below, and the AWS SDK
 * must only send checksums the API requires (see S3ObjectStore).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** s3rver's built-in account. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3rverHandle {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** A bucket that exists, empty at start. */
  bucket: string;
  /** Stops the server and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Runs in the child (CommonJS, via `node -e`). Reports `{ port }` or
 * `{ error }` over IPC, and exits when the parent goes away, so a crashed
 * test run leaves no server behind.
 */
const CHILD_SCRIPT = `
const S3rver = require(process.argv[1]);
const { directory, bucket } = JSON.parse(process.argv[2]);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
});
process.on('disconnect', () => process.exit(0));
server.run().then(
  (address) => process.send({ port: address.port }),
  (err) => {
    process.send({ error: String((err && err.stack) || err) });
    process.exit(1);
  },
);
`;

const START_TIMEOUT_MS = 15_000;

export async function startS3rver(bucket = 'canopy-test'): Promise<S3rverHandle> {
  const directory = await mkdtemp(path.join(tmpdir(), 'canopy-s3rver-'));
  const s3rverMain = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      '-e',
      CHILD_SCRIPT,
      s3rverMain,
      JSON.stringify({ directory, bucket }),
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    await rm(directory, { recursive: true, force: true });
  };

  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)),
        START_TIMEOUT_MS,
      );
      child.once('message', (message: { port?: number; error?: string }) => {
        clearTimeout(timer);
        if (typeof message.port === 'number') resolve(message.port);
        else reject(new Error(`s3rver failed to start: ${message.error ?? 'unknown'}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited (${code ?? signal}) before listening: ${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return { endpoint: `http://127.0.0.1:${port}`, bucket, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
