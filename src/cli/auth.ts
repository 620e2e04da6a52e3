/**
 * `canopy keys|users|devices …`: credentials. These are the tools that make
 * the first key, so they work with no key: they open the metadata store
 * named by the config directly. A running Canopy with the default DuckDB
 * store holds that file; then they go through its API instead, with an
 * admin API key (`--api-key` or `CANOPY_API_KEY`), or always with `--url`.
 *
 * A new key or device password is printed once, alone on stdout (so a
 * script can capture it), with what it is on stderr; `--json` prints both
 * as one JSON object. Passwords of users are read from the terminal without
 * echo, or from stdin with `--password-stdin`, never from the command line.
 */
import { Command, Option } from 'commander';
import { apiKeyToWire, deviceToWire, userToWire } from '../api/auth.js';
import { DURATION_PATTERN, durationMs } from '../alerts/rules/schema.js';
import { AuthService } from '../auth/service.js';
import { systemClock } from '../core/clock.js';
import { CanopyError, isCanopyError } from '../core/errors.js';
import type { CanopyConfig } from '../config/schema.js';
import { parseTimestamp } from '../ingest/index.js';
import { silentLogger } from '../observability/logger.js';
import { openMetaStore } from '../storage/index.js';
import { apiBaseUrl, apiKeyOption, callApi } from './api-client.js';
import { table } from './workflows.js';

type WireKey = ReturnType<typeof apiKeyToWire>;
type WireUser = ReturnType<typeof userToWire>;
type WireDevice = ReturnType<typeof deviceToWire>;

export interface AuthCommandDeps {
  load: (configFile: string | undefined) => CanopyConfig;
  fail: (err: unknown) => never;
}

interface AdminFlags {
  config?: string;
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** The `--expires` of a new key: a duration (90d, 12h) or a time (ISO 8601). */
interface KeyExpiry {
  in?: string;
  at?: number;
}

/** What the commands do, the same through the store or through the API. */
interface CredentialAdmin {
  createKey(name: string, scopes: string[], expiry: KeyExpiry): Promise<WireKey & { key: string }>;
  listKeys(): Promise<WireKey[]>;
  revokeKey(id: string): Promise<void>;
  addUser(username: string, role: string, password: string): Promise<WireUser>;
  listUsers(): Promise<WireUser[]>;
  removeUser(username: string): Promise<void>;
  setPassword(username: string, password: string): Promise<void>;
  createDevice(
    id: string,
    topics: string[] | undefined,
  ): Promise<WireDevice & { password: string }>;
  listDevices(): Promise<WireDevice[]>;
  revokeDevice(id: string): Promise<void>;
  close(): Promise<void>;
}

function storeAdmin(service: AuthService, close: () => Promise<void>): CredentialAdmin {
  return {
    async createKey(name, scopes, expiry) {
      const expiresAt = expiry.in !== undefined ? service.now() + durationMs(expiry.in) : expiry.at;
      const { apiKey, key } = await service.createApiKey({ name, scopes, expiresAt });
      return { ...apiKeyToWire(apiKey, apiKey.createdAt), key };
    },
    async listKeys() {
      const now = service.now();
      return (await service.listApiKeys()).map((k) => apiKeyToWire(k, now));
    },
    revokeKey: (id) => service.revokeApiKey(id),
    addUser: async (username, role, password) =>
      userToWire(await service.addUser(username, role, password)),
    listUsers: async () => (await service.listUsers()).map(userToWire),
    removeUser: (username) => service.removeUser(username),
    setPassword: (username, password) => service.setPassword(username, password),
    async createDevice(id, topics) {
      const { device, password } = await service.createDevice(id, topics);
      return { ...deviceToWire(device), password };
    },
    listDevices: async () => (await service.listDevices()).map(deviceToWire),
    revokeDevice: (id) => service.revokeDevice(id),
    close,
  };
}

function apiAdmin(baseUrl: string, apiKey: string | undefined): CredentialAdmin {
  const call = (method: string, path: string, body?: Record<string, unknown>): Promise<unknown> =>
    callApi(
      `${baseUrl}${path}`,
      body === undefined
        ? { method }
        : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
      apiKey,
    );
  const enc = encodeURIComponent;
  return {
    createKey: async (name, scopes, expiry) =>
      (await call('POST', '/api/keys', {
        name,
        scopes,
        ...(expiry.in === undefined ? {} : { expires_in: expiry.in }),
        ...(expiry.at === undefined ? {} : { expires_at: new Date(expiry.at).toISOString() }),
      })) as WireKey & { key: string },
    listKeys: async () => ((await call('GET', '/api/keys')) as { data: WireKey[] }).data,
    revokeKey: async (id) => void (await call('DELETE', `/api/keys/${enc(id)}`)),
    addUser: async (username, role, password) =>
      (await call('POST', '/api/users', { username, role, password })) as WireUser,
    listUsers: async () => ((await call('GET', '/api/users')) as { data: WireUser[] }).data,
    removeUser: async (username) => void (await call('DELETE', `/api/users/${enc(username)}`)),
    setPassword: async (username, password) =>
      void (await call('PUT', `/api/users/${enc(username)}/password`, { password })),
    createDevice: async (id, topics) =>
      (await call('POST', '/api/devices', {
        id,
        ...(topics === undefined ? {} : { topics }),
      })) as WireDevice & { password: string },
    listDevices: async () => ((await call('GET', '/api/devices')) as { data: WireDevice[] }).data,
    revokeDevice: async (id) => void (await call('DELETE', `/api/devices/${enc(id)}`)),
    close: () => Promise.resolve(),
  };
}

/** The store from config, or the running Canopy's API when it holds the store (see the module comment). */
async function openAdmin(deps: AuthCommandDeps, flags: AdminFlags): Promise<CredentialAdmin> {
  if (flags.url !== undefined) return apiAdmin(flags.url.replace(/\/+$/, ''), flags.apiKey);
  const config = deps.load(flags.config);
  const store = openMetaStore(config.meta, config.dataDir, silentLogger());
  try {
    await store.open();
  } catch (err) {
    if (!isCanopyError(err, 'CANOPY_META_UNAVAILABLE')) throw err;
    if (flags.apiKey !== undefined) return apiAdmin(apiBaseUrl(config), flags.apiKey);
    throw new CanopyError(
      'CANOPY_META_UNAVAILABLE',
      `${err.message}. A running Canopy holds its metadata store: give an admin API key (--api-key or CANOPY_API_KEY) to go through its API, or stop it and run this again`,
      { cause: err },
    );
  }
  const service = new AuthService({
    store,
    clock: systemClock,
    sessionTtlMs: config.auth.sessionTtlMs,
  });
  return storeAdmin(service, () => store.close());
}

/** Runs `work` with an admin, closing it after; failures go to `deps.fail`. */
async function withAdmin(
  deps: AuthCommandDeps,
  flags: AdminFlags,
  work: (admin: CredentialAdmin) => Promise<void>,
): Promise<void> {
  try {
    const admin = await openAdmin(deps, flags);
    try {
      await work(admin);
    } finally {
      await admin.close();
    }
  } catch (err) {
    deps.fail(err);
  }
}

function adminOptions(command: Command): Command {
  return command
    .addOption(new Option('--config <file>', 'YAML config file (names the metadata store)'))
    .addOption(
      new Option('--url <url>', 'go through the API of the Canopy at this address instead'),
    )
    .addOption(apiKeyOption())
    .option('--json', 'print JSON');
}

function print(flags: AdminFlags, json: unknown, text: string): void {
  console.log(flags.json ? JSON.stringify(json, null, 2) : text);
}

/** Prints a secret shown once: alone on stdout, with what it is on stderr. */
function printSecret(flags: AdminFlags, json: unknown, secret: string, about: string): void {
  if (flags.json) {
    console.log(JSON.stringify(json, null, 2));
    return;
  }
  console.error(`${about}\nStore it now: it is not shown again.`);
  console.log(secret);
}

function parseExpiry(text: string | undefined): KeyExpiry {
  if (text === undefined) return {};
  if (DURATION_PATTERN.test(text)) return { in: text };
  const at = parseTimestamp(text);
  if (Number.isNaN(at))
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `--expires must be a duration such as 90d or a time (ISO 8601), got "${text}"`,
    );
  return { at };
}

function keysCommand(deps: AuthCommandDeps): Command {
  const keys = new Command('keys').description(
    'API keys: scoped, hashed at rest, shown once (docs/security.md)',
  );
  adminOptions(
    keys
      .command('create')
      .description('make an API key and print it (once)')
      .requiredOption('--name <name>', 'what the key is for, e.g. grafana')
      .requiredOption(
        '--scopes <scopes>',
        'comma list of ingest, read, query, operate, admin (admin: everything)',
      )
      .option('--expires <when>', 'a duration (90d, 12h) or a time (ISO 8601); default never'),
  ).action(async (flags: AdminFlags & { name: string; scopes: string; expires?: string }) => {
    await withAdmin(deps, flags, async (admin) => {
      const scopes = flags.scopes.split(',').map((s) => s.trim());
      const created = await admin.createKey(flags.name, scopes, parseExpiry(flags.expires));
      printSecret(
        flags,
        created,
        created.key,
        `API key ${created.id} "${created.name}" with scopes ${created.scopes.join(', ')}, ${created.expires_at === null ? 'never expires' : `expires ${created.expires_at}`}.`,
      );
    });
  });
  adminOptions(keys.command('list').description('every key: id, name, scopes, state, use')).action(
    async (flags: AdminFlags) => {
      await withAdmin(deps, flags, async (admin) => {
        const list = await admin.listKeys();
        print(
          flags,
          list,
          list.length === 0
            ? 'no API keys'
            : table([
                ['ID', 'NAME', 'SCOPES', 'STATE', 'CREATED', 'EXPIRES', 'LAST USED'],
                ...list.map((k) => [
                  k.id,
                  k.name,
                  k.scopes.join(','),
                  k.state,
                  k.created_at ?? '',
                  k.expires_at ?? 'never',
                  k.last_used_at ?? 'never',
                ]),
              ]),
        );
      });
    },
  );
  adminOptions(
    keys
      .command('revoke')
      .description('revoke a key at once (it stays listed as revoked)')
      .argument('<id>', 'the key id (from keys list, or the 16 hex digits after cnp_)'),
  ).action(async (id: string, flags: AdminFlags) => {
    await withAdmin(deps, flags, async (admin) => {
      await admin.revokeKey(id);
      print(flags, { id, revoked: true }, `revoked API key ${id}`);
    });
  });
  return keys;
}

/** A password from stdin (`--password-stdin`) or typed twice at the terminal without echo. */
async function readPassword(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY)
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      'no terminal to type the password in: pipe it with --password-stdin',
    );
  const first = await promptHidden('Password: ');
  const second = await promptHidden('Again: ');
  if (first !== second) throw new CanopyError('CANOPY_API_BAD_REQUEST', 'the passwords differ');
  return first;
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || ch === '\u0004')
          return finish(new CanopyError('CANOPY_API_BAD_REQUEST', 'cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

function usersCommand(deps: AuthCommandDeps): Command {
  const users = new Command('users').description(
    'dashboard users: viewer (read), operator (read, query, act on alerts and workflows), admin (everything)',
  );
  const passwordStdin = (): Option =>
    new Option('--password-stdin', 'read the password from stdin instead of the terminal');
  adminOptions(
    users
      .command('add')
      .description('add a user (asks for the password)')
      .argument('<username>')
      .addOption(
        new Option('--role <role>', 'what the user may do')
          .choices(['viewer', 'operator', 'admin'])
          .makeOptionMandatory(),
      )
      .addOption(passwordStdin()),
  ).action(
    async (username: string, flags: AdminFlags & { role: string; passwordStdin?: boolean }) => {
      await withAdmin(deps, flags, async (admin) => {
        const password = await readPassword(flags.passwordStdin);
        const user = await admin.addUser(username, flags.role, password);
        print(flags, user, `added ${user.role} ${user.username}`);
      });
    },
  );
  adminOptions(users.command('list').description('every user and role')).action(
    async (flags: AdminFlags) => {
      await withAdmin(deps, flags, async (admin) => {
        const list = await admin.listUsers();
        print(
          flags,
          list,
          list.length === 0
            ? 'no users'
            : table([
                ['USERNAME', 'ROLE', 'CREATED', 'PASSWORD CHANGED'],
                ...list.map((u) => [
                  u.username,
                  u.role,
                  u.created_at ?? '',
                  u.password_changed_at ?? '',
                ]),
              ]),
        );
      });
    },
  );
  adminOptions(
    users
      .command('remove')
      .description('remove a user and end their sessions')
      .argument('<username>'),
  ).action(async (username: string, flags: AdminFlags) => {
    await withAdmin(deps, flags, async (admin) => {
      await admin.removeUser(username);
      print(flags, { username, removed: true }, `removed ${username}`);
    });
  });
  adminOptions(
    users
      .command('passwd')
      .description('set a user’s password (asks for it); their sessions end')
      .argument('<username>')
      .addOption(passwordStdin()),
  ).action(async (username: string, flags: AdminFlags & { passwordStdin?: boolean }) => {
    await withAdmin(deps, flags, async (admin) => {
      await admin.setPassword(username, await readPassword(flags.passwordStdin));
      print(flags, { username, password_changed: true }, `changed the password of ${username}`);
    });
  });
  return users;
}

function devicesCommand(deps: AuthCommandDeps): Command {
  const devices = new Command('devices').description(
    'MQTT credentials of devices for the embedded broker (used when auth.mode is required)',
  );
  adminOptions(
    devices
      .command('create')
      .description('make a device’s credentials and print its password (once)')
      .argument('<id>', 'the device id, its MQTT username')
      .option(
        '--topic <filter>',
        'a topic filter it may publish to (repeat for several; default sensors/<id>/#)',
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      ),
  ).action(async (id: string, flags: AdminFlags & { topic?: string[] }) => {
    await withAdmin(deps, flags, async (admin) => {
      const created = await admin.createDevice(id, flags.topic);
      printSecret(
        flags,
        created,
        created.password,
        `Device ${created.id}: MQTT username "${created.id}", client id "${created.id}" (or "${created.id}:<anything>"), may publish to ${created.topics.join(', ')}. Its password:`,
      );
    });
  });
  adminOptions(devices.command('list').description('every device and its topics')).action(
    async (flags: AdminFlags) => {
      await withAdmin(deps, flags, async (admin) => {
        const list = await admin.listDevices();
        print(
          flags,
          list,
          list.length === 0
            ? 'no devices'
            : table([
                ['ID', 'STATE', 'TOPICS', 'CREATED'],
                ...list.map((d) => [d.id, d.state, d.topics.join(','), d.created_at ?? '']),
              ]),
        );
      });
    },
  );
  adminOptions(
    devices
      .command('revoke')
      .description(
        'revoke a device’s credentials (through the API its connection also ends at once)',
      )
      .argument('<id>'),
  ).action(async (id: string, flags: AdminFlags) => {
    await withAdmin(deps, flags, async (admin) => {
      await admin.revokeDevice(id);
      print(flags, { id, revoked: true }, `revoked device ${id}`);
    });
  });
  return devices;
}

/** `canopy keys`, `canopy users`, `canopy devices`. */
export function authCommands(deps: AuthCommandDeps): Command[] {
  return [keysCommand(deps), usersCommand(deps), devicesCommand(deps)];
}
