/**
 * Alerting in the running platform: the rules file, the evaluator fed by
 * pipeline commits and pipeline events, and the outbox dispatcher that
 * delivers notifications, over the metadata store the caller opened.
 *
 * Order of work for one committed group: commit (readings durable) →
 * evaluation queued → changes and their outbox entries stored in one
 * metadata transaction → the new entries handed to the dispatcher → notifiers. Stopping reverses it:
 * evaluations queued so far are applied, in-flight deliveries finish (bounded
 * by their timeouts); pending entries wait in the outbox for the next start.
 */
import type { AlertStore } from '../core/alerts.js';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig, Thresholds } from '../config/schema.js';
import {
  AlertEngine,
  AlertService,
  OutboxDispatcher,
  ensureRulesFile,
  exportRules,
  parseRules,
  saveRulesFile,
  ruleContextOf,
  rulesFilePath,
  type Notifier,
  type PipelineEvent,
  type RuleSet,
} from '../alerts/index.js';
import type { AlertApiDeps } from '../api/alerts.js';
import type { QualityHistory } from '../lake/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** How often finished quality runs (written by any process into the lake) are looked for. */
const QUALITY_POLL_MS = 60_000;

export interface Alerting {
  service: AlertService;
  dispatcher: OutboxDispatcher;
  store: AlertStore;
  /** What the API's alert routes use. */
  api: AlertApiDeps & { sampleGauges(): Promise<void> };
  /** Feeds a pipeline event (job outcome, quality result, deadline) to the rules. */
  observe(event: PipelineEvent): void;
  stop(): Promise<void>;
}

/** The warning / critical bands of config `sensors` and `sensorTypes`: a sensor's own over its type's. */
function configuredBounds(
  config: CanopyConfig,
): (
  sensorId: string,
  sensorType: string | null,
) => { warning?: Thresholds; critical?: Thresholds } {
  const sensors = new Map(config.sensors.map((s) => [s.id, s]));
  return (sensorId, sensorType) => {
    const own = sensors.get(sensorId);
    const type = config.sensorTypes[own?.type ?? sensorType ?? ''];
    const warning = own?.warning ?? type?.warning;
    const critical = own?.critical ?? type?.critical;
    return {
      ...(warning === undefined ? {} : { warning }),
      ...(critical === undefined ? {} : { critical }),
    };
  };
}

export async function startAlerting(deps: {
  config: CanopyConfig;
  /** The metadata store, opened (and later closed) by the caller. */
  store: AlertStore;
  /** The configured channels; closed by the outbox dispatcher when it stops. */
  notifiers: ReadonlyMap<string, Notifier>;
  hotStore: HotStore;
  quality: Pick<QualityHistory, 'latestBySuite'>;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
}): Promise<Alerting> {
  const { config, clock, metrics } = deps;
  const logger = deps.logger.child({ component: 'alerts' });
  const rulesFile = rulesFilePath(config);
  const context = ruleContextOf(config);
  const rules = await ensureRulesFile(rulesFile, context);

  const { store } = deps;
  const closers: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) await close();
  };
  try {
    const dispatcher = new OutboxDispatcher({
      ...config.alerting.outbox,
      store,
      notifiers: deps.notifiers,
      clock,
      metrics,
      logger: logger.child({ component: 'outbox' }),
      timeoutMsFor: (channel) => config.alerting.notifiers[channel]?.timeoutMs ?? 5_000,
    });
    closers.push(() => dispatcher.stop());
    const engine = new AlertEngine({
      rules,
      routes: config.alerting.routes,
      configuredBounds: configuredBounds(config),
      ...(config.alerting.publicUrl === undefined
        ? {}
        : { publicUrl: config.alerting.publicUrl.replace(/\/+$/, '') }),
    });
    const service = new AlertService({
      store,
      engine,
      clock,
      metrics,
      logger,
      tickMs: config.alerting.tickMs,
      onQueued: (entries) => dispatcher.offer(entries),
    });
    const sensors = await deps.hotStore.listSensors();
    await service.start(
      sensors.map((s) => ({
        sensorId: s.sensorId,
        sensorType: s.sensorType,
        location: s.location,
        lastSeenAt: s.lastSeen,
      })),
    );
    closers.push(() => service.stop());
    dispatcher.start();

    const observe = (event: PipelineEvent): void => {
      service.observe(event).catch((err: unknown) => {
        logger.error({ err, event: event.kind }, 'could not record a pipeline event for alerting');
      });
    };
    const stopQualityWatch = watchQuality(deps.quality, clock, observe, logger);
    closers.push(() => Promise.resolve(stopQualityWatch()));

    const replaceRules = async (text: string): Promise<RuleSet> => {
      if (config.alerting.rulesReadOnly)
        throw new CanopyError(
          'CANOPY_ALERT_RULES_READ_ONLY',
          `alert rules are read-only here (alerting.rulesReadOnly); edit ${rulesFile} instead`,
        );
      const next = parseRules(text, context);
      await saveRulesFile(rulesFile, next);
      await service.replaceRules(next);
      logger.info({ rules: next.rules.length }, 'alert rules replaced');
      return next;
    };

    return {
      service,
      dispatcher,
      store,
      observe,
      stop,
      api: {
        store,
        act: (id, action) => service.act(id, action),
        rules: () => service.rules(),
        replaceRules,
        exportRules,
        now: () => clock.now(),
        sampleGauges: () => dispatcher.sampleGauges(),
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Quality runs are written into the lake by whichever process ran them (the
 * CLI, a scheduler); each suite's newest result not seen before becomes a
 * `quality` event. At start every suite's newest result counts as new: a
 * failure opens its alert (or finds it open), a success resolves it, so
 * results written while Canopy was down are not missed.
 */
function watchQuality(
  quality: Pick<QualityHistory, 'latestBySuite'>,
  clock: Clock,
  observe: (event: PipelineEvent) => void,
  logger: Logger,
): () => void {
  const seen = new Map<string, string>();
  const poll = async (): Promise<void> => {
    try {
      for (const suite of await quality.latestBySuite()) {
        if (seen.get(suite.suite) === suite.run_id) continue;
        seen.set(suite.suite, suite.run_id);
        observe({
          kind: 'quality',
          suite: suite.suite,
          ok: suite.success,
          at: clock.now(),
          failedExpectations: suite.failed,
        });
      }
    } catch (err) {
      logger.warn({ err }, 'could not read quality results for alerting; retrying later');
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), QUALITY_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
