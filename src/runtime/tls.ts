/**
 * Reading the PEM files named in the config's `tls` sections. They are read
 * once at start-up: a renewed certificate takes effect on restart.
 */
import { readFileSync } from 'node:fs';
import { CanopyError } from '../core/errors.js';

/** The file's contents; CANOPY_CONFIG_INVALID naming the setting when it cannot be read. */
export function readPemFile(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `${setting}: cannot read ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Certificate and key (and an optional CA bundle) for a TLS server. */
export function serverTlsOptions(
  tls: { certFile: string; keyFile: string; caFile?: string | undefined },
  section: string,
): { cert: Buffer; key: Buffer; ca?: Buffer } {
  return {
    cert: readPemFile(tls.certFile, `${section}.certFile`),
    key: readPemFile(tls.keyFile, `${section}.keyFile`),
    ...(tls.caFile === undefined ? {} : { ca: readPemFile(tls.caFile, `${section}.caFile`) }),
  };
}
