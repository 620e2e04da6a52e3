/**
 * Load process: HTTP/1.1 POSTs over `window` keep-alive connections
 * (node:http Agent), one request in flight per connection. A 200 answer
 * counts its `accepted` readings (Canopy) or the whole body (a peer that
 * does not decode); anything else is an error.
 */
import http from 'node:http';
import { serveLoad } from './child.js';

const CONTENT_TYPES = {
  'json-array': 'application/json',
  ndjson: 'application/x-ndjson',
  'json-object': 'application/json',
};

await serveLoad((spec, params) => {
  const target = spec.target;
  if (target.kind !== 'http') throw new Error('http-poster needs an http target');
  const set = params.sets.find((s) => s.name === spec.set);
  if (!set) throw new Error(`no payload set named ${spec.set}`);
  const contentType = CONTENT_TYPES[set.encoding];
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: spec.window,
    maxFreeSockets: spec.window,
  });
  return Promise.resolve({
    send(unit, done) {
      let settled = false;
      const finish = (err: Error | null, accepted: number): void => {
        if (settled) return;
        settled = true;
        done(err, accepted);
      };
      const req = http.request(
        {
          host: '127.0.0.1',
          port: target.port,
          path: target.path,
          method: 'POST',
          agent,
          headers: { 'content-type': contentType, 'content-length': unit.payload.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (err) => finish(err, 0));
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              finish(new Error(`HTTP ${res.statusCode}: ${body.slice(0, 300)}`), 0);
              return;
            }
            let accepted = unit.readings;
            try {
              const parsed = JSON.parse(body) as { accepted?: unknown };
              if (typeof parsed.accepted === 'number') accepted = parsed.accepted;
            } catch {
              // A peer may answer with anything on 200.
            }
            finish(null, accepted);
          });
        },
      );
      req.on('error', (err) => finish(err, 0));
      req.end(unit.payload);
    },
    close: () => {
      agent.destroy();
      return Promise.resolve();
    },
  });
});
