import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  apiKeyId,
  checkPasswordPolicy,
  generateApiKey,
  generateDevicePassword,
  generateSessionToken,
  hashPassword,
  matchesHash,
  sha256Hex,
  verifyPassword,
} from './secrets.js';

describe('generated secrets', () => {
  it('an API key carries its id, and its hash is the SHA-256 of the whole text', () => {
    const { id, key, hash } = generateApiKey();
    expect(key).toMatch(/^cnp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(apiKeyId(key)).toBe(id);
    // Recomputed a second way: hex digest of the UTF-8 bytes.
    expect(hash).toBe(createHash('sha256').update(Buffer.from(key, 'utf8')).digest('hex'));
    expect(sha256Hex(key)).toBe(hash);
  });

  it('keys, tokens and passwords differ on every call', () => {
    const keys = new Set(Array.from({ length: 50 }, () => generateApiKey().key));
    const tokens = new Set(Array.from({ length: 50 }, () => generateSessionToken()));
    const passwords = new Set(Array.from({ length: 50 }, () => generateDevicePassword()));
    expect([keys.size, tokens.size, passwords.size]).toEqual([50, 50, 50]);
    expect(generateSessionToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateDevicePassword()).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it('apiKeyId refuses anything but a well-formed key', () => {
    const { key } = generateApiKey();
    for (const bad of [
      '',
      key.slice(0, -1),
      `${key}x`,
      key.replace('cnp_', 'cnq_'),
      key.toUpperCase(),
      ` ${key}`,
      'cnp_0123456789abcdef_short',
    ])
      expect(apiKeyId(bad)).toBeUndefined();
  });

  it('matchesHash accepts the secret only, and a malformed stored hash never matches', () => {
    const { key, hash } = generateApiKey();
    expect(matchesHash(key, hash)).toBe(true);
    expect(matchesHash(`${key.slice(0, -1)}A`, hash)).toBe(key.endsWith('A'));
    expect(matchesHash(key, hash.slice(0, -2))).toBe(false);
    expect(matchesHash(key, '')).toBe(false);
    expect(matchesHash(key, 'not hex at all')).toBe(false);
  });
});

describe('passwords', () => {
  it('verify against their scrypt hash, and only the right password does', async () => {
    const hash = await hashPassword('correct horse battery staple');
    expect(hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', hash)).toBe(false);
    expect(await verifyPassword('Correct horse battery staple', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
  });

  it('salts each hash, and compares the NFC form of what was typed', async () => {
    const composed = 'caf\u00e9-au-lait-2026';
    const decomposed = 'cafe\u0301-au-lait-2026';
    const [a, b] = [await hashPassword(composed), await hashPassword(composed)];
    expect(a).not.toBe(b);
    expect(await verifyPassword(decomposed, a)).toBe(true);
  });

  it('a malformed or tampered stored hash is a mismatch, not an error', async () => {
    const hash = await hashPassword('a long enough password');
    const costly = hash.replace('ln=15', 'ln=30');
    for (const stored of [
      '',
      'plain',
      '$scrypt$ln=15,r=8,p=1$$',
      costly,
      hash.replace('r=8', 'r=99'),
    ])
      expect(await verifyPassword('a long enough password', stored)).toBe(false);
    // A flipped hash byte.
    const parts = hash.split('$');
    const digest = Buffer.from(parts[4]!, 'base64');
    digest[0] = digest[0]! ^ 1;
    parts[4] = digest.toString('base64').replace(/=+$/, '');
    expect(await verifyPassword('a long enough password', parts.join('$'))).toBe(false);
  });

  it('the policy takes 12 to 1024 characters', () => {
    expect(() => checkPasswordPolicy('x'.repeat(11))).toThrow(/12 to 1024/);
    expect(() => checkPasswordPolicy('x'.repeat(1025))).toThrow(/12 to 1024/);
    expect(() => checkPasswordPolicy('x'.repeat(12))).not.toThrow();
    expect(() => checkPasswordPolicy('x'.repeat(1024))).not.toThrow();
  });
});
