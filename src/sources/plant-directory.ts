/**
 * The conservatory's plant directory: what the plants API says about each
 * plant beyond its measures — name, when it was last watered, its botanist —
 * which the plants decoder does not turn into readings (readings are numbers
 * in time; these are facts about the plant). The dashboard's conservatory
 * view joins them with the plant's latest readings from the hot store.
 *
 * How it is fed: a polling source with `format: plants` submits through
 * `observe(sink)`, a sink that passes every message on unchanged and, once
 * the pipeline has committed it, records the plant records of its payload.
 * A record counts only when the decoder would accept it as a plant (a valid
 * `plant_id` and `recording_taken`), and a plant's entry only moves forward
 * in time: an older recording never replaces a newer one. A message the
 * pipeline refused (overloaded, commit failed) records nothing, so the
 * directory never runs ahead of the stored readings.
 *
 * Persistence: one JSON file (`<dataDir>/plants.json`), rewritten whole,
 * atomically (temp file, fsync, rename), at most once per `saveDelayMs`
 * after a change and once more at `close`. A crash loses at most the changes
 * of that delay, which the next poll round brings back. An unreadable file is
 * logged and set aside as `<file>.bad-<time>`, and the directory starts empty.
 *
 * Bounds: at most `maxPlants` plants (records of new plants beyond it are
 * ignored and logged once); names and botanist fields are cut to 256
 * characters.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { IngestMessage, IngestSink } from '../core/ingest.js';
import { plantIdOf, parseTimestamp } from '../ingest/index.js';
import type { Logger } from '../observability/logger.js';

export interface Botanist {
  name: string | null;
  email: string | null;
  phone: string | null;
}

export interface PlantInfo {
  /** As in the sensor ids `plant-<plantId>.<measure>`. */
  plantId: string;
  name: string | null;
  /** Epoch ms, or null when the record had none (or an unreadable one). */
  lastWatered: number | null;
  botanist: Botanist | null;
  /** `recording_taken` of the record this entry comes from, epoch ms. */
  recordedAt: number;
}

export interface PlantDirectoryOptions {
  /** The JSON file the directory lives in; its folder is created when needed. */
  file: string;
  logger: Logger;
  saveDelayMs?: number;
  maxPlants?: number;
}

const FILE_VERSION = 1;
const MAX_TEXT = 256;

interface StoredPlant {
  plant_id: string;
  name: string | null;
  last_watered: string | null;
  botanist: Botanist | null;
  recorded_at: string;
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value.slice(0, MAX_TEXT) : null;
}

function time(value: unknown): number | null {
  if (typeof value !== 'string' && typeof value !== 'number') return null;
  const ms = parseTimestamp(value);
  return Number.isNaN(ms) ? null : ms;
}

function botanistOf(value: unknown): Botanist | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const b = value as Record<string, unknown>;
  const botanist = { name: text(b.name), email: text(b.email), phone: text(b.phone) };
  return botanist.name === null && botanist.email === null && botanist.phone === null
    ? null
    : botanist;
}

/** The plant a record describes, or null when the decoder would reject the record. */
export function plantInfoOf(record: unknown): PlantInfo | null {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return null;
  const r = record as Record<string, unknown>;
  const plantId = plantIdOf(r.plant_id);
  const recordedAt = time(r.recording_taken);
  if (plantId === undefined || recordedAt === null) return null;
  return {
    plantId,
    name: text(r.name),
    lastWatered: time(r.last_watered),
    botanist: botanistOf(r.botanist),
    recordedAt,
  };
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function toStored(p: PlantInfo): StoredPlant {
  return {
    plant_id: p.plantId,
    name: p.name,
    last_watered: iso(p.lastWatered),
    botanist: p.botanist,
    recorded_at: new Date(p.recordedAt).toISOString(),
  };
}

function fromStored(s: unknown): PlantInfo | null {
  if (typeof s !== 'object' || s === null) return null;
  const r = s as Record<string, unknown>;
  // The stored form uses the API's own field names, so it reads back like a record.
  return plantInfoOf({ ...r, recording_taken: r.recorded_at });
}

export class PlantDirectory {
  private readonly plants = new Map<string, PlantInfo>();
  private readonly saveDelayMs: number;
  private readonly maxPlants: number;
  private dirty = false;
  private saveTimer: NodeJS.Timeout | undefined;
  /** The save in progress; saves never overlap. */
  private saving: Promise<void> = Promise.resolve();
  private warnedFull = false;

  private constructor(private readonly o: PlantDirectoryOptions) {
    this.saveDelayMs = o.saveDelayMs ?? 5_000;
    this.maxPlants = o.maxPlants ?? 10_000;
  }

  /** Loads the file if there is one. Never throws for a bad file (see the module comment). */
  static async open(options: PlantDirectoryOptions): Promise<PlantDirectory> {
    const directory = new PlantDirectory(options);
    await directory.load();
    return directory;
  }

  /** Every plant, in the order first seen. */
  list(): PlantInfo[] {
    return [...this.plants.values()];
  }

  /** A sink that hands messages to `sink` and records the plants of each committed one. */
  observe(sink: IngestSink): IngestSink {
    return {
      submit: async (message: IngestMessage) => {
        const result = await sink.submit(message);
        if (!result.duplicate) this.recordPayload(message.payload);
        return result;
      },
      submitDeadLetter: (deadLetter) => sink.submitDeadLetter(deadLetter),
    };
  }

  /** Records the plant records of a plants-API payload (one record or an array). */
  recordPayload(payload: string | Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    } catch {
      return; // the decoder dead-lettered it
    }
    for (const record of Array.isArray(parsed) ? parsed : [parsed]) {
      const info = plantInfoOf(record);
      if (info !== null) this.record(info);
    }
  }

  /** Writes pending changes and stops the save timer. */
  async close(): Promise<void> {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.save();
  }

  private record(info: PlantInfo): void {
    const known = this.plants.get(info.plantId);
    if (known !== undefined && known.recordedAt > info.recordedAt) return;
    if (known === undefined && this.plants.size >= this.maxPlants) {
      if (!this.warnedFull)
        this.o.logger.warn(
          { maxPlants: this.maxPlants },
          'the plant directory is full; records of further plants are not kept',
        );
      this.warnedFull = true;
      return;
    }
    this.plants.set(info.plantId, info);
    this.dirty = true;
    this.saveTimer ??= setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, this.saveDelayMs);
    this.saveTimer.unref();
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.o.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as { version?: unknown; plants?: unknown };
      if (parsed.version !== FILE_VERSION || !Array.isArray(parsed.plants))
        throw new Error(`not a version ${FILE_VERSION} plant directory`);
      for (const stored of parsed.plants) {
        const info = fromStored(stored);
        if (info !== null) this.plants.set(info.plantId, info);
      }
    } catch (err) {
      const aside = `${this.o.file}.bad-${Date.now()}`;
      await rename(this.o.file, aside);
      this.o.logger.warn(
        { err, file: this.o.file, movedTo: aside },
        'the plant directory file is unreadable; starting empty',
      );
    }
  }

  private save(): Promise<void> {
    this.saving = this.saving.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await this.write();
      } catch (err) {
        this.dirty = true;
        this.o.logger.error({ err, file: this.o.file }, 'could not save the plant directory');
      }
    });
    return this.saving;
  }

  private async write(): Promise<void> {
    const body = JSON.stringify(
      { version: FILE_VERSION, plants: this.list().map(toStored) },
      null,
      1,
    );
    const dir = path.dirname(this.o.file);
    const temp = path.join(
      dir,
      `.${path.basename(this.o.file)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    await mkdir(dir, { recursive: true });
    try {
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(body, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.o.file);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}
