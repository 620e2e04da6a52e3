/**
 * The allow-list of hosts notifiers may call (`alerting.allowedHosts`): a
 * webhook or Slack URL naming any other host is refused when the config is
 * validated, so a changed config cannot turn alert delivery into requests to
 * internal services (cloud metadata endpoints, admin ports).
 *
 * An entry is a hostname (`hooks.slack.com`, matched exactly, any case), a
 * wildcard for subdomains (`*.example.com`: `a.example.com`, not
 * `example.com`), an IP address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`)
 * that IP-literal hosts are matched against. Hostnames are not resolved: an
 * allowed name is trusted to point where its owner says.
 */
import net from 'node:net';

/** Problems with the entries themselves; empty when every entry is usable. */
export function allowedHostsProblems(entries: readonly string[]): string[] {
  const problems: string[] = [];
  for (const entry of entries) {
    if (parseEntry(entry) === undefined) {
      problems.push(
        `${JSON.stringify(entry)} is not a hostname, *.domain, IP address or CIDR block`,
      );
    }
  }
  return problems;
}

type Entry =
  | { kind: 'name'; name: string }
  | { kind: 'suffix'; suffix: string }
  | { kind: 'cidr'; address: string; prefix: number; family: 'ipv4' | 'ipv6' };

const HOSTNAME =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function parseEntry(raw: string): Entry | undefined {
  const entry = raw.trim().toLowerCase();
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = net.isIP(address);
  if (version !== 0) {
    const max = version === 4 ? 32 : 128;
    const prefix = slash < 0 ? max : Number(entry.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
    return { kind: 'cidr', address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
  }
  if (slash >= 0) return undefined;
  if (entry.startsWith('*.')) {
    const suffix = entry.slice(2);
    return HOSTNAME.test(suffix) ? { kind: 'suffix', suffix } : undefined;
  }
  return HOSTNAME.test(entry) ? { kind: 'name', name: entry } : undefined;
}

/** The host a URL names (for messages; never the path or credentials); '' when it does not parse. */
export function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
}

/**
 * True when the URL's host is allowed by `entries`; an empty list allows
 * every host (the option is off). A URL that does not parse is not allowed.
 */
export function isHostAllowed(url: string, entries: readonly string[]): boolean {
  if (entries.length === 0) return true;
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const version = net.isIP(host);
  for (const raw of entries) {
    const entry = parseEntry(raw);
    if (entry === undefined) continue;
    if (entry.kind === 'cidr') {
      if (version === 0) continue;
      const block = new net.BlockList();
      block.addSubnet(entry.address, entry.prefix, entry.family);
      if (block.check(host, version === 4 ? 'ipv4' : 'ipv6')) return true;
    } else if (version === 0) {
      if (entry.kind === 'name' && host === entry.name) return true;
      if (entry.kind === 'suffix' && host.endsWith(`.${entry.suffix}`)) return true;
    }
  }
  return false;
}
