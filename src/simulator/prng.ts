/**
 * Seeded randomness for the simulator. Generation must be reproducible from a
 * seed (tests compare runs, users replay a scenario), so nothing here touches
 * Math.random.
 *
 * Two tools:
 * - `hash32(...parts)` mixes integers into one 32-bit seed. The fleet derives
 *   a fresh stream per (sensor, slot, purpose), which makes any reading
 *   computable on its own, without generating the ones before it.
 * - `Rng`, a small sequential generator (the mulberry32 step) with uniform,
 *   integer, Bernoulli and normal draws.
 */

const TWO_POW_32 = 4_294_967_296;

/** The 32-bit finaliser of MurmurHash3: spreads every input bit over the output. */
function avalanche(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Mixes integers (any safe integer, negative included; fractions are
 * truncated) into an unsigned 32-bit value. Order matters: (1, 2) and (2, 1)
 * differ.
 */
export function hash32(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    const n = Math.trunc(part);
    const lo = n >>> 0;
    const hi = Math.floor(n / TWO_POW_32) >>> 0;
    h = avalanche(Math.imul(h ^ lo, 0x27d4eb2f) + 0x165667b1);
    h = avalanche(Math.imul(h ^ hi, 0x27d4eb2f) + 0x165667b1);
  }
  return h;
}

/** A seeded pseudo-random sequence. Not for cryptography. */
export class Rng {
  private state: number;
  /** Box–Muller yields normals in pairs; the second waits here. */
  private spare: number | null = null;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / TWO_POW_32;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi], both ends included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (mean 0, sd 1), by the Box–Muller transform. */
  gaussian(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    // 1 - next() is in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.next();
    const u2 = this.next();
    const radius = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Fisher–Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }
}
