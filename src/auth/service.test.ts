import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { isCanopyError, type ErrorCode } from '../core/errors.js';
import { DuckDbMetaStore } from '../storage/meta/duckdb-meta-store.js';
import { sha256Hex } from './secrets.js';
import { AuthService, CredentialsRefused } from './service.js';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const HOUR = 3_600_000;

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'resolved' | 'other'> {
  try {
    await promise;
    return 'resolved';
  } catch (err) {
    return isCanopyError(err) ? err.code : 'other';
  }
}

describe('AuthService', () => {
  let store: DuckDbMetaStore;
  let clock: ManualClock;
  let auth: AuthService;

  beforeEach(async () => {
    store = new DuckDbMetaStore({ path: ':memory:' });
    await store.open();
    clock = new ManualClock(T0);
    auth = new AuthService({ store, clock, sessionTtlMs: 12 * HOUR });
  });

  afterEach(async () => {
    await store.close();
  });

  describe('API keys', () => {
    it('stores only the hash and accepts the key with its scopes', async () => {
      const { apiKey, key } = await auth.createApiKey({ name: 'gateway', scopes: ['ingest'] });
      const stored = await store.getApiKey(apiKey.id);
      expect(stored).toEqual(apiKey);
      expect(JSON.stringify(stored)).not.toContain(key.split('_')[2]);
      expect(stored?.hash).toBe(sha256Hex(key));
      expect(await auth.authenticateKey(key)).toEqual({
        kind: 'api-key',
        id: apiKey.id,
        name: 'gateway',
        scopes: ['ingest'],
      });
    });

    it('refuses malformed, unknown, wrong, revoked and expired keys alike', async () => {
      const { apiKey, key } = await auth.createApiKey({
        name: 'grafana',
        scopes: ['read'],
        expiresAt: T0 + HOUR,
      });
      const wrongSecret = `${key.slice(0, -4)}${key.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      const unknownId = key.replace(apiKey.id, 'f'.repeat(16));
      for (const bad of ['', 'Bearer', 'cnp_short', wrongSecret, unknownId]) {
        const err = await auth.authenticateKey(bad).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CredentialsRefused);
        expect((err as Error).message).toBe('the API key is not accepted');
      }
      expect((await auth.authenticateKey(key)).id).toBe(apiKey.id);

      clock.set(T0 + HOUR);
      const expired = (await auth
        .authenticateKey(key)
        .catch((e: unknown) => e)) as CredentialsRefused;
      expect([expired.code, expired.why]).toEqual(['CANOPY_AUTH_REQUIRED', 'expired']);

      const { apiKey: other, key: otherKey } = await auth.createApiKey({
        name: 'x',
        scopes: ['read'],
      });
      await auth.revokeApiKey(other.id);
      const revoked = (await auth
        .authenticateKey(otherKey)
        .catch((e: unknown) => e)) as CredentialsRefused;
      expect(revoked.why).toBe('revoked');
      expect(await codeOf(auth.revokeApiKey(other.id))).toBe('CANOPY_API_NOT_FOUND');
    });

    it('validates name, scopes and expiry, and keeps scopes in canonical order', async () => {
      expect(await codeOf(auth.createApiKey({ name: ' ', scopes: ['read'] }))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      expect(await codeOf(auth.createApiKey({ name: 'x', scopes: [] }))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      expect(await codeOf(auth.createApiKey({ name: 'x', scopes: ['read', 'write'] }))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      expect(await codeOf(auth.createApiKey({ name: 'x', scopes: ['read'], expiresAt: T0 }))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      const { apiKey } = await auth.createApiKey({
        name: 'x',
        scopes: ['query', 'ingest', 'query'],
      });
      expect(apiKey.scopes).toEqual(['ingest', 'query']);
      expect(await store.listApiKeys()).toHaveLength(1);
    });

    it('records the last use at most once a minute', async () => {
      const { apiKey, key } = await auth.createApiKey({ name: 'x', scopes: ['read'] });
      const lastUsed = async () => (await store.getApiKey(apiKey.id))?.lastUsedAt;
      const settle = () => store.listApiKeys(); // queued behind the background write
      await auth.authenticateKey(key);
      await settle();
      expect(await lastUsed()).toBe(T0);
      clock.advance(59_000);
      await auth.authenticateKey(key);
      await settle();
      expect(await lastUsed()).toBe(T0);
      clock.advance(1_000);
      await auth.authenticateKey(key);
      await settle();
      expect(await lastUsed()).toBe(T0 + 60_000);
    });

    it('an ephemeral key works in this process and is never stored', async () => {
      const key = auth.ephemeralApiKey('simulator', ['ingest']);
      expect((await auth.authenticateKey(key)).scopes).toEqual(['ingest']);
      expect(await store.listApiKeys()).toEqual([]);
    });
  });

  describe('users and sessions', () => {
    it('logs in with the right password only, and answers alike for unknown users', async () => {
      await auth.addUser('ops', 'operator', 'a password of some length');
      const { token, session, principal } = await auth.login('ops', 'a password of some length');
      expect(session).toEqual({
        id: sha256Hex(token),
        username: 'ops',
        createdAt: T0,
        expiresAt: T0 + 12 * HOUR,
      });
      expect(principal).toMatchObject({ kind: 'session', role: 'operator' });
      expect(principal.scopes).toEqual(['read', 'query', 'operate']);
      expect(await auth.authenticateSession(token)).toEqual(principal);

      for (const [user, password, why] of [
        ['ops', 'a password of some lengtH', 'wrong password'],
        ['nobody', 'a password of some length', 'unknown user'],
        ['../etc', 'a password of some length', 'unknown user'],
      ]) {
        const err = (await auth
          .login(user!, password!)
          .catch((e: unknown) => e)) as CredentialsRefused;
        expect([err.code, err.message, err.why]).toEqual([
          'CANOPY_AUTH_REQUIRED',
          'the username or password is wrong',
          why,
        ]);
      }
    });

    it('a session ends at its expiry, at logout, on a new password and on removal', async () => {
      await auth.addUser('ann', 'viewer', 'first password 123');
      const login = () => auth.login('ann', 'first password 123');

      const expiring = await login();
      clock.advance(12 * HOUR - 1);
      await auth.authenticateSession(expiring.token);
      clock.advance(1);
      expect(await codeOf(auth.authenticateSession(expiring.token))).toBe('CANOPY_AUTH_REQUIRED');
      expect(await store.purgeSessions(clock.now())).toBe(1);

      const loggedOut = await login();
      expect(await auth.logout(loggedOut.token)).toBe(true);
      expect(await auth.logout(loggedOut.token)).toBe(false);
      expect(await codeOf(auth.authenticateSession(loggedOut.token))).toBe('CANOPY_AUTH_REQUIRED');

      const beforeChange = await login();
      await auth.setPassword('ann', 'second password 456');
      expect(await codeOf(auth.authenticateSession(beforeChange.token))).toBe(
        'CANOPY_AUTH_REQUIRED',
      );
      expect(await codeOf(login())).toBe('CANOPY_AUTH_REQUIRED');
      const afterChange = await auth.login('ann', 'second password 456');

      await auth.removeUser('ann');
      expect(await codeOf(auth.authenticateSession(afterChange.token))).toBe(
        'CANOPY_AUTH_REQUIRED',
      );
    });

    it('validates usernames, roles and passwords, and refuses a second user of a name', async () => {
      expect(await codeOf(auth.addUser('a b', 'viewer', 'long enough password'))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      expect(await codeOf(auth.addUser('ann', 'root', 'long enough password'))).toBe(
        'CANOPY_API_BAD_REQUEST',
      );
      expect(await codeOf(auth.addUser('ann', 'viewer', 'short'))).toBe('CANOPY_API_BAD_REQUEST');
      await auth.addUser('ann', 'viewer', 'long enough password');
      expect(await codeOf(auth.addUser('ann', 'admin', 'long enough password'))).toBe(
        'CANOPY_AUTH_CONFLICT',
      );
      expect(await codeOf(auth.removeUser('bob'))).toBe('CANOPY_API_NOT_FOUND');
      expect(await codeOf(auth.setPassword('bob', 'long enough password'))).toBe(
        'CANOPY_API_NOT_FOUND',
      );
      expect((await auth.listUsers()).map((u) => [u.username, u.role])).toEqual([
        ['ann', 'viewer'],
      ]);
    });
  });

  describe('devices', () => {
    it('authenticates a device by its generated password until revoked', async () => {
      const { device, password } = await auth.createDevice('gh-7');
      expect(device.topics).toEqual(['sensors/gh-7/#']);
      expect(device.passwordHash).toBe(sha256Hex(password));
      expect(await auth.authenticateDevice('gh-7', password)).toEqual(device);
      expect(await auth.authenticateDevice('gh-7', `${password}x`)).toBeUndefined();
      expect(await auth.authenticateDevice('gh-8', password)).toBeUndefined();

      expect(await codeOf(auth.createDevice('gh-7'))).toBe('CANOPY_AUTH_CONFLICT');
      await auth.revokeDevice('gh-7');
      expect(await auth.authenticateDevice('gh-7', password)).toBeUndefined();
      expect(await codeOf(auth.revokeDevice('gh-7'))).toBe('CANOPY_API_NOT_FOUND');

      // New credentials for the same device; the old password stays refused.
      const renewed = await auth.createDevice('gh-7', ['plants/gh-7/+']);
      expect(await auth.authenticateDevice('gh-7', password)).toBeUndefined();
      expect(await auth.authenticateDevice('gh-7', renewed.password)).toMatchObject({
        topics: ['plants/gh-7/+'],
      });
    });

    it('validates ids and topic filters', async () => {
      for (const id of ['', 'a/b', 'a+b', 'a#', 'x'.repeat(65)])
        expect(await codeOf(auth.createDevice(id))).toBe('CANOPY_API_BAD_REQUEST');
      for (const topic of ['', 'a/#/b', '$SYS/#', 'a/b+'])
        expect(await codeOf(auth.createDevice('ok', [topic]))).toBe('CANOPY_API_BAD_REQUEST');
      expect(await auth.listDevices()).toEqual([]);
    });

    it('an ephemeral device works in this process and is never stored', async () => {
      const password = auth.ephemeralDevice('canopy-simulator', ['iot/data']);
      expect(await auth.authenticateDevice('canopy-simulator', password)).toMatchObject({
        topics: ['iot/data'],
      });
      expect(await store.listDevices()).toEqual([]);
    });
  });
});
