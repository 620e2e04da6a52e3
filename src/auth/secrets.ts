/**
 * Making and checking secrets. Two kinds, hashed two ways:
 *
 * - Secrets Canopy generates — API keys, session tokens, device passwords —
 *   carry 192 to 256 random bits. Guessing one from its SHA-256 is as hard as
 *   guessing the secret itself, so a slow hash would add nothing but cost:
 *   every API request checks a key, and a slow hash there would let anyone
 *   with a bad key burn CPU and memory. They are stored as hex SHA-256.
 * - Passwords people choose have little entropy and are attacked offline
 *   with dictionaries if the database leaks, so they get scrypt, a slow,
 *   memory-hard hash, with a random salt and the cost parameters kept in the
 *   stored string so they can be raised later without breaking old hashes.
 *
 * Comparisons of hashes use `timingSafeEqual`, so the time taken does not
 * tell how many leading bytes matched.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { CanopyError } from '../core/errors.js';

/** The text of an API key: a recognisable prefix (for secret scanners), the public id, the secret. */
const API_KEY_PATTERN = /^cnp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Whether `text` hashes to `hashHex`, compared in constant time. */
export function matchesHash(text: string, hashHex: string): boolean {
  const actual = createHash('sha256').update(text, 'utf8').digest();
  const expected = Buffer.from(hashHex, 'hex');
  return expected.length === actual.length && timingSafeEqual(actual, expected);
}

/** A new API key: `cnp_<16 hex id>_<43 base64url characters = 256 random bits>`. */
export function generateApiKey(): { id: string; key: string; hash: string } {
  const id = randomBytes(8).toString('hex');
  const key = `cnp_${id}_${randomBytes(32).toString('base64url')}`;
  return { id, key, hash: sha256Hex(key) };
}

/** The id of a well-formed API key text, or undefined. */
export function apiKeyId(text: string): string | undefined {
  return API_KEY_PATTERN.exec(text)?.[1];
}

/** A session token for the cookie: 256 random bits, base64url. */
export function generateSessionToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A device's MQTT password: 192 random bits, base64url (32 characters). */
export function generateDevicePassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * scrypt cost: N = 2^15, r = 8, p = 1 takes 32 MiB and on the order of
 * 100 ms per hash on a server core. Node runs it on the libuv pool (4
 * threads), so at most four logins hash at once and the event loop is not
 * blocked.
 */
const SCRYPT = { logN: 15, r: 8, p: 1, keyLength: 32, saltLength: 16 };
/** Refuse stored parameters beyond these: a tampered hash must not be able to exhaust memory. */
const MAX_LOG_N = 20;
const MAX_R = 16;
const MAX_P = 4;

export const MIN_PASSWORD_LENGTH = 12;
/** Long enough for any passphrase; bounds the work one login can ask for. */
export const MAX_PASSWORD_LENGTH = 1024;

/** Throws CANOPY_API_BAD_REQUEST unless the password's length is within the policy. */
export function checkPasswordPolicy(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `a password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long`,
    );
  }
}

function scryptAsync(
  password: string,
  salt: Buffer,
  params: { logN: number; r: number; p: number; keyLength: number },
): Promise<Buffer> {
  const N = 2 ** params.logN;
  return new Promise((resolve, reject) => {
    scrypt(
      password.normalize('NFC'),
      salt,
      params.keyLength,
      // maxmem above the 128·N·r·p the parameters need, which equals Node's default at 2^15.
      { N, r: params.r, p: params.p, maxmem: 256 * N * params.r * params.p },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/**
 * Hashes a password as a PHC string: `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`
 * (salt and hash base64 without padding). The password is NFC-normalised,
 * so the same characters typed on different systems match.
 */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltLength);
  const hash = await scryptAsync(password, salt, SCRYPT);
  const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${SCRYPT.logN},r=${SCRYPT.r},p=${SCRYPT.p}$${b64(salt)}$${b64(hash)}`;
}

const PHC_SCRYPT =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/**
 * Whether `password` matches a hash from `hashPassword`. False, not an
 * error, for a stored string that is malformed or asks for more than the
 * allowed cost.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = PHC_SCRYPT.exec(stored);
  if (!m || password.length > MAX_PASSWORD_LENGTH) return false;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 1 || logN > MAX_LOG_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P) return false;
  const salt = Buffer.from(m[4]!, 'base64');
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length < 16) return false;
  const actual = await scryptAsync(password, salt, { logN, r, p, keyLength: expected.length });
  return timingSafeEqual(actual, expected);
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the time of one password check against a hash no password
 * matches: a login for an unknown username then takes as long as one with a
 * wrong password, so timing does not reveal which usernames exist.
 */
export async function spendPasswordCheck(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64url'));
  await verifyPassword(password, await dummyHash);
}
