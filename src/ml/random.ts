/**
 * Seeded randomness for training and evaluation. Both must be reproducible
 * from a seed (the same seed gives the same hidden values, the same bootstrap
 * samples and so the same numbers), so nothing in src/ml touches Math.random.
 */

const TWO_POW_32 = 4_294_967_296;

/** A small sequential generator (the mulberry32 step). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / TWO_POW_32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A new generator whose stream depends on this one's seed and `salt`, not on draws made since. */
  static derive(seed: number, salt: number): Rng {
    return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca6b)) >>> 0);
  }
}

/** `count` distinct items of `items`, in random order (a partial Fisher–Yates shuffle of a copy). */
export function sampleWithoutReplacement<T>(items: readonly T[], count: number, rng: Rng): T[] {
  const copy = items.slice();
  const k = Math.min(count, copy.length);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(copy.length - i);
    const tmp = copy[i]!;
    copy[i] = copy[j]!;
    copy[j] = tmp;
  }
  return copy.slice(0, k);
}
