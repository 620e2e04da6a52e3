import { afterEach, describe, expect, it } from 'vitest';
import {
  answerStatus,
  startHttpReceiver,
  type HttpReceiver,
} from '../../../test/helpers/http-receiver.js';
import { samplePayload, sampleReport } from '../../../test/helpers/notification.js';
import { SlackNotifier } from './slack.js';

interface SlackBody {
  text: string;
  blocks: { type: string; text?: { text: string }; fields?: { text: string }[] }[];
}

let receiver: HttpReceiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

describe('SlackNotifier', () => {
  it('posts readable text and blocks with severity, sensor, location, value, threshold, event and link', async () => {
    receiver = await startHttpReceiver(answerStatus(200, 'ok'));
    const notifier = new SlackNotifier({ channel: 'growers-slack', url: receiver.url });
    const payload = samplePayload({ note: 'vent <stuck> & fan off' });
    await notifier.send(payload, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.headers['content-type']).toBe('application/json');
    const body = JSON.parse(request?.body ?? '') as SlackBody;
    for (const fact of [
      'CRITICAL',
      'escalated',
      payload.alert.summary,
      'gh-temp-17',
      'greenhouse/1/a',
      '41.5',
      '38',
      `<${payload.alert.url}|`,
      'vent &lt;stuck&gt; &amp; fan off',
    ]) {
      expect(body.text).toContain(fact);
    }
    const blockText = body.blocks
      .flatMap((b) => [b.text?.text ?? '', ...(b.fields ?? []).map((f) => f.text)])
      .join('\n');
    for (const fact of [
      '*Sensor*\ngh-temp-17',
      '*Value*\n41.5',
      '*Threshold*\n38',
      `<${payload.alert.url}|`,
    ]) {
      expect(blockText).toContain(fact);
    }
    for (const block of body.blocks) expect((block.fields ?? []).length).toBeLessThanOrEqual(10);
  });

  it('posts a report as its title, one line and one field per fact in order, and the link', async () => {
    receiver = await startHttpReceiver(answerStatus(200, 'ok'));
    const notifier = new SlackNotifier({ channel: 'growers-slack', url: receiver.url });
    const report = sampleReport();
    await notifier.sendReport(report, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.headers['content-type']).toBe('application/json');
    const body = JSON.parse(request?.body ?? '') as SlackBody;
    const lines = body.text.split('\n');
    expect(lines[0]).toContain(`*${report.title}*`);
    // What a reader sees once Slack undoes its three escapes.
    const unescape = (t: string) =>
      t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    expect(lines.slice(1, -1).map(unescape)).toEqual(report.facts.map(([l, v]) => `${l}: ${v}`));
    expect(lines.at(-1)).toBe(`<${report.url}|Open the report in Canopy>`);
    expect(body.text).toContain('greenhouse &lt;1&gt; &amp; co');

    const fields = body.blocks.flatMap((b) => (b.fields ?? []).map((f) => unescape(f.text)));
    expect(fields).toEqual(report.facts.map(([l, v]) => `*${l}*\n${v}`));
    expect(body.blocks.at(-1)?.text?.text).toBe(`<${report.url}|Open the report in Canopy>`);
  });

  it('leaves the link out of a report without a URL, and fails a report Slack refuses', async () => {
    receiver = await startHttpReceiver(answerStatus(200, 'ok'));
    const notifier = new SlackNotifier({ channel: 'growers-slack', url: receiver.url });
    await notifier.sendReport(sampleReport({ url: null }), AbortSignal.timeout(5_000));
    const [request] = await receiver.received(1);
    expect((JSON.parse(request?.body ?? '') as SlackBody).text).not.toContain('Open the report');

    const refusing = await startHttpReceiver(answerStatus(400, 'invalid_blocks'));
    try {
      const error = await new SlackNotifier({ channel: 'growers-slack', url: refusing.url })
        .sendReport(sampleReport(), AbortSignal.timeout(5_000))
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
      expect((error as Error).message).toContain('invalid_blocks');
    } finally {
      await refusing.close();
    }
  });

  it('leaves the link out when the alert has no URL', async () => {
    receiver = await startHttpReceiver(answerStatus(200, 'ok'));
    const notifier = new SlackNotifier({ channel: 'growers-slack', url: receiver.url });
    const base = samplePayload();
    await notifier.send(
      { ...base, alert: { ...base.alert, url: null } },
      AbortSignal.timeout(5_000),
    );
    const [request] = await receiver.received(1);
    expect((JSON.parse(request?.body ?? '') as SlackBody).text).not.toContain('Open the alert');
  });

  it.each([
    [400, 'invalid_payload'],
    [404, 'no_service'],
    [200, 'not ok'],
  ])('fails with CANOPY_NOTIFY_FAILED on %i %s', async (status, answer) => {
    receiver = await startHttpReceiver(answerStatus(status, answer));
    const url = `${receiver.url}/T000/B000/XXXXSECRET`;
    const notifier = new SlackNotifier({ channel: 'growers-slack', url });
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain(answer);
    expect((error as Error).message).not.toContain('XXXXSECRET');
  });
});
