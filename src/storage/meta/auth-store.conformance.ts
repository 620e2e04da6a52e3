/**
 * The one conformance suite every `AuthStore` adapter runs (DuckDB file,
 * PostgreSQL). It tests the contract in `core/auth.ts` through the store's
 * own methods only; list orders are checked against a plain sort.
 *
 * Contract details the interface comments leave open, fixed here so that
 * every adapter agrees:
 * - Every field round-trips exactly, nulls included; names may hold any
 *   characters.
 * - Lists order text by code point (byte order of UTF-8), not by a locale
 *   collation: `Zoe` comes before `alice`.
 * - A repeated session id rejects and leaves the first session as it was.
 * - `purgeSessions(before)` deletes sessions expiring at or before `before`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApiKey, Device, Session, User } from '../../core/auth.js';
import type { MetaStore } from '../../core/meta.js';
import { alertFixture, changesOf, FIXTURE_T0 } from './alert-store.conformance.js';
import { META_MIGRATIONS } from './meta-sql.js';
import type { WorkflowStoreHarness } from './workflow-store.conformance.js';
import { runFixture, taskFixture } from './workflow-store.conformance.js';

export type AuthStoreHarness = WorkflowStoreHarness;

let serial = 0;
/** A distinct 16-hex id per call. */
function nextId(): string {
  serial += 1;
  return serial.toString(16).padStart(16, '0');
}

export function apiKeyFixture(overrides: Partial<ApiKey> = {}): ApiKey {
  return {
    id: nextId(),
    name: 'grafana',
    scopes: ['read'],
    hash: 'a'.repeat(64),
    createdAt: FIXTURE_T0,
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    ...overrides,
  };
}

export function userFixture(overrides: Partial<User> = {}): User {
  return {
    username: 'alice',
    role: 'viewer',
    passwordHash: '$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA',
    createdAt: FIXTURE_T0,
    passwordChangedAt: FIXTURE_T0,
    ...overrides,
  };
}

export function sessionFixture(overrides: Partial<Session> = {}): Session {
  return {
    id: `${nextId()}${'b'.repeat(48)}`,
    username: 'alice',
    createdAt: FIXTURE_T0,
    expiresAt: FIXTURE_T0 + 3_600_000,
    ...overrides,
  };
}

export function deviceFixture(overrides: Partial<Device> = {}): Device {
  return {
    id: 'greenhouse-7',
    passwordHash: 'c'.repeat(64),
    topics: ['sensors/greenhouse-7/#'],
    createdAt: FIXTURE_T0,
    revokedAt: null,
    ...overrides,
  };
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function describeAuthStoreConformance(
  name: string,
  createHarness: () => Promise<AuthStoreHarness>,
): void {
  describe(`AuthStore conformance: ${name}`, () => {
    let harness: AuthStoreHarness;
    let store: MetaStore;

    beforeEach(async () => {
      harness = await createHarness();
      store = harness.make();
      await store.open();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    describe('API keys', () => {
      it('round-trips every field, nulls and odd names included', async () => {
        const plain = apiKeyFixture();
        const full = apiKeyFixture({
          name: `o'brien "ops" \\ Ünïcode 🌱; DROP TABLE auth_api_keys; --`,
          scopes: ['ingest', 'read', 'query', 'operate', 'admin'],
          expiresAt: Number.MAX_SAFE_INTEGER,
          revokedAt: FIXTURE_T0 + 1,
          lastUsedAt: FIXTURE_T0 + 2,
        });
        expect(await store.createApiKey(plain)).toBe(true);
        expect(await store.createApiKey(full)).toBe(true);
        expect(await store.getApiKey(plain.id)).toEqual(plain);
        expect(await store.getApiKey(full.id)).toEqual(full);
        expect(await store.getApiKey('0'.repeat(16))).toBeUndefined();
      });

      it('refuses a repeated id and keeps the first key', async () => {
        const first = apiKeyFixture();
        expect(await store.createApiKey(first)).toBe(true);
        expect(await store.createApiKey({ ...first, name: 'other', hash: 'd'.repeat(64) })).toBe(
          false,
        );
        expect(await store.listApiKeys()).toEqual([first]);
      });

      it('lists every key oldest first, ties by id, revoked ones too', async () => {
        const keys = [
          apiKeyFixture({ createdAt: FIXTURE_T0 + 5 }),
          apiKeyFixture({ createdAt: FIXTURE_T0 }),
          apiKeyFixture({ createdAt: FIXTURE_T0 + 5, revokedAt: FIXTURE_T0 + 6 }),
          apiKeyFixture({ createdAt: FIXTURE_T0 - 1, expiresAt: FIXTURE_T0 }),
        ];
        for (const key of [...keys].reverse()) await store.createApiKey(key);
        const expected = [...keys].sort(
          (a, b) => a.createdAt - b.createdAt || byCodePoint(a.id, b.id),
        );
        expect(await store.listApiKeys()).toEqual(expected);
      });

      it('revokes once: a second revoke, or one of an unknown id, changes nothing', async () => {
        const key = apiKeyFixture();
        await store.createApiKey(key);
        expect(await store.revokeApiKey(key.id, FIXTURE_T0 + 10)).toBe(true);
        expect(await store.revokeApiKey(key.id, FIXTURE_T0 + 20)).toBe(false);
        expect(await store.revokeApiKey('f'.repeat(16), FIXTURE_T0)).toBe(false);
        expect(await store.getApiKey(key.id)).toEqual({ ...key, revokedAt: FIXTURE_T0 + 10 });
      });

      it('records the last use, and ignores an unknown id', async () => {
        const key = apiKeyFixture();
        const other = apiKeyFixture();
        await store.createApiKey(key);
        await store.createApiKey(other);
        await store.touchApiKey(key.id, FIXTURE_T0 + 60_000);
        await store.touchApiKey('e'.repeat(16), FIXTURE_T0);
        expect(await store.listApiKeys()).toEqual([
          { ...key, lastUsedAt: FIXTURE_T0 + 60_000 },
          other,
        ]);
      });
    });

    describe('users and sessions', () => {
      it('round-trips users, refuses a repeated username, lists by code point', async () => {
        const users = [
          userFixture({ username: 'alice' }),
          userFixture({ username: 'Zoe', role: 'admin', createdAt: FIXTURE_T0 + 1 }),
          userFixture({
            username: 'ops@example.org',
            role: 'operator',
            passwordHash: `$scrypt$ln=15,r=8,p=1$${'x'.repeat(22)}$${'y'.repeat(43)}`,
            passwordChangedAt: FIXTURE_T0 + 9,
          }),
        ];
        for (const user of users) expect(await store.createUser(user)).toBe(true);
        expect(await store.createUser(userFixture({ username: 'alice', role: 'admin' }))).toBe(
          false,
        );
        expect(await store.getUser('alice')).toEqual(users[0]);
        expect(await store.getUser('ALICE')).toBeUndefined();
        expect(await store.listUsers()).toEqual(
          [...users].sort((a, b) => byCodePoint(a.username, b.username)),
        );
      });

      it('round-trips sessions and deletes one at a time', async () => {
        await store.createUser(userFixture());
        const session = sessionFixture();
        const other = sessionFixture({ createdAt: FIXTURE_T0 + 1 });
        await store.createSession(session);
        await store.createSession(other);
        expect(await store.getSession(session.id)).toEqual(session);
        expect(await store.deleteSession(session.id)).toBe(true);
        expect(await store.deleteSession(session.id)).toBe(false);
        expect(await store.getSession(session.id)).toBeUndefined();
        expect(await store.getSession(other.id)).toEqual(other);
      });

      it('rejects a repeated session id and keeps the first', async () => {
        const session = sessionFixture();
        await store.createSession(session);
        await expect(
          store.createSession({ ...session, username: 'mallory', expiresAt: FIXTURE_T0 + 9e9 }),
        ).rejects.toThrow();
        expect(await store.getSession(session.id)).toEqual(session);
      });

      it('purges sessions expiring at or before the time given', async () => {
        const sessions = [0, 1, 2, 3].map((n) =>
          sessionFixture({ expiresAt: FIXTURE_T0 + n * 1_000 }),
        );
        for (const s of sessions) await store.createSession(s);
        expect(await store.purgeSessions(FIXTURE_T0 + 1_000)).toBe(2);
        for (const s of sessions) {
          expect(await store.getSession(s.id)).toEqual(
            s.expiresAt <= FIXTURE_T0 + 1_000 ? undefined : s,
          );
        }
        expect(await store.purgeSessions(FIXTURE_T0 + 1_000)).toBe(0);
      });

      it('a new password replaces the hash and ends that user’s sessions only', async () => {
        const alice = userFixture();
        const bob = userFixture({ username: 'bob' });
        await store.createUser(alice);
        await store.createUser(bob);
        const aliceSession = sessionFixture();
        const bobSession = sessionFixture({ username: 'bob' });
        await store.createSession(aliceSession);
        await store.createSession(bobSession);

        expect(await store.setPassword('alice', '$scrypt$new', FIXTURE_T0 + 5)).toBe(true);
        expect(await store.getUser('alice')).toEqual({
          ...alice,
          passwordHash: '$scrypt$new',
          passwordChangedAt: FIXTURE_T0 + 5,
        });
        expect(await store.getSession(aliceSession.id)).toBeUndefined();
        expect(await store.getSession(bobSession.id)).toEqual(bobSession);
        expect(await store.setPassword('nobody', '$scrypt$x', FIXTURE_T0)).toBe(false);
        expect(await store.getUser('nobody')).toBeUndefined();
      });

      it('removing a user removes their sessions; an unknown user is false', async () => {
        await store.createUser(userFixture());
        await store.createUser(userFixture({ username: 'bob' }));
        const aliceSession = sessionFixture();
        const bobSession = sessionFixture({ username: 'bob' });
        await store.createSession(aliceSession);
        await store.createSession(bobSession);

        expect(await store.removeUser('alice')).toBe(true);
        expect(await store.removeUser('alice')).toBe(false);
        expect(await store.getUser('alice')).toBeUndefined();
        expect(await store.getSession(aliceSession.id)).toBeUndefined();
        expect(await store.getSession(bobSession.id)).toEqual(bobSession);
        expect((await store.listUsers()).map((u) => u.username)).toEqual(['bob']);
        // The username is free again.
        expect(await store.createUser(userFixture({ role: 'admin' }))).toBe(true);
      });
    });

    describe('devices', () => {
      it('round-trips devices and lists them by id, revoked ones too', async () => {
        const devices = [
          deviceFixture({ id: 'gh-2' }),
          deviceFixture({ id: 'Gh-1', topics: ['sensors/Gh-1/#', 'plants/+/Gh-1'] }),
          deviceFixture({ id: 'gh-1.a_b', topics: [], revokedAt: FIXTURE_T0 + 3 }),
        ];
        for (const d of devices) expect(await store.createDevice(d)).toBe(true);
        expect(await store.getDevice('Gh-1')).toEqual(devices[1]);
        expect(await store.getDevice('gh-9')).toBeUndefined();
        expect(await store.listDevices()).toEqual(
          [...devices].sort((a, b) => byCodePoint(a.id, b.id)),
        );
      });

      it('refuses a second active device with the same id, keeping the first', async () => {
        const device = deviceFixture();
        expect(await store.createDevice(device)).toBe(true);
        expect(await store.createDevice({ ...device, passwordHash: 'd'.repeat(64) })).toBe(false);
        expect(await store.listDevices()).toEqual([device]);
      });

      it('revokes once, and a revoked device is replaced by a new one with its id', async () => {
        const device = deviceFixture();
        await store.createDevice(device);
        expect(await store.revokeDevice(device.id, FIXTURE_T0 + 1)).toBe(true);
        expect(await store.revokeDevice(device.id, FIXTURE_T0 + 2)).toBe(false);
        expect(await store.revokeDevice('unknown', FIXTURE_T0)).toBe(false);
        expect(await store.getDevice(device.id)).toEqual({ ...device, revokedAt: FIXTURE_T0 + 1 });

        const renewed = deviceFixture({ passwordHash: 'e'.repeat(64), createdAt: FIXTURE_T0 + 5 });
        expect(await store.createDevice(renewed)).toBe(true);
        expect(await store.listDevices()).toEqual([renewed]);
      });
    });

    describe('schema', () => {
      it('keeps credentials across close and open', async () => {
        const key = apiKeyFixture();
        const user = userFixture();
        const session = sessionFixture();
        const device = deviceFixture();
        await store.createApiKey(key);
        await store.createUser(user);
        await store.createSession(session);
        await store.createDevice(device);
        await store.close();

        const reopened = harness.make();
        await reopened.open();
        expect(await reopened.getApiKey(key.id)).toEqual(key);
        expect(await reopened.getUser(user.username)).toEqual(user);
        expect(await reopened.getSession(session.id)).toEqual(session);
        expect(await reopened.getDevice(device.id)).toEqual(device);
      });

      it('migrates a v2 store (alerts, workflow runs) to v3, keeping what it holds', async () => {
        await harness.cleanup();
        harness = await createHarness();
        const v2 = harness.make({ migrations: META_MIGRATIONS.slice(0, 2) });
        await v2.open();
        const alert = alertFixture();
        const run = runFixture();
        await v2.apply(changesOf({ alerts: [alert] }));
        await v2.createRun(run, [taskFixture(run.id, 'a')]);
        // The v2 schema has no credential tables.
        await expect(v2.listApiKeys()).rejects.toThrow();
        await v2.close();

        const v3 = harness.make();
        await v3.open();
        expect(await v3.getAlert(alert.id)).toEqual(alert);
        expect((await v3.getRun(run.id))?.run).toEqual(run);
        const key = apiKeyFixture();
        expect(await v3.createApiKey(key)).toBe(true);
        expect(await v3.listApiKeys()).toEqual([key]);
      });
    });
  });
}
