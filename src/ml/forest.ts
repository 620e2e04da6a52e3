/**
 * Random-forest regression, histogram-based, written for this project.
 *
 * Why not a library: `ml-random-forest` (mljs, on top of `ml-cart`) installs
 * and runs on Node 20, but its trees try every distinct value of every
 * feature at every node, so training grows with the square of the rows:
 * 20 trees on 3,000 rows × 20 features took 34 s here, and the air-quality
 * file has 9,357 rows × 13 measures. Binning each feature into at most
 * `bins` quantile bins (as LightGBM and scikit-learn's histogram estimators
 * do) makes a node's split search linear in its rows.
 *
 * Missing features (NaN) get their own bin; every split learns whether they
 * go left or right. Each tree is grown on a bootstrap sample, with a fresh
 * random subset of the features tried at each node; all draws come from the
 * seed, so training is deterministic.
 */
import { Rng } from './random.js';

export const FOREST_IMPLEMENTATION = { name: 'canopy-histogram-forest', version: '1' } as const;

export interface ForestOptions {
  trees: number;
  maxDepth: number;
  /** Fewest training rows in a leaf. */
  minLeaf: number;
  /** Share of the features tried at each node, (0, 1]. */
  featureFraction: number;
  /** Bins per feature, 2..255 (bin 0 is reserved for NaN). */
  bins: number;
  seed: number;
}

export const DEFAULT_FOREST_OPTIONS: ForestOptions = Object.freeze({
  trees: 60,
  maxDepth: 14,
  minLeaf: 3,
  featureFraction: 0.5,
  bins: 64,
  seed: 1,
});

/** A tree as parallel arrays; node 0 is the root, a leaf has feature -1. */
export interface TreeJson {
  feature: number[];
  /** Rows whose bin is ≤ this (and > 0) go left. */
  bin: number[];
  /** 1: NaN goes left. */
  missingLeft: number[];
  left: number[];
  right: number[];
  value: number[];
}

export interface ForestJson {
  options: ForestOptions;
  /** Per feature, the ascending upper edges of bins 1..k-1 (the last bin is open). */
  thresholds: number[][];
  trees: TreeJson[];
}

/** Per feature, at most bins-2 cut points: midpoints between distinct values, or quantiles. */
function binThresholds(column: Float64Array, bins: number): number[] {
  const known = Array.from(column.filter((x) => !Number.isNaN(x))).sort((a, b) => a - b);
  const distinct: number[] = [];
  for (const x of known) if (distinct[distinct.length - 1] !== x) distinct.push(x);
  const maxCuts = bins - 2;
  if (distinct.length - 1 <= maxCuts) {
    return distinct.slice(1).map((x, i) => (distinct[i]! + x) / 2);
  }
  const cuts: number[] = [];
  for (let q = 1; q <= maxCuts; q++) {
    const cut = known[Math.floor((q * known.length) / (maxCuts + 1))]!;
    if (cuts[cuts.length - 1] !== cut) cuts.push(cut);
  }
  return cuts;
}

/** 0 for NaN; otherwise 1 + the number of cut points below x. */
function binOf(x: number, cuts: readonly number[]): number {
  if (Number.isNaN(x)) return 0;
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1;
}

export class RandomForest {
  private constructor(private readonly json: ForestJson) {}

  static fromJSON(json: ForestJson): RandomForest {
    return new RandomForest(json);
  }

  toJSON(): ForestJson {
    return this.json;
  }

  /**
   * Trains on `rows` (each a feature array of the same length; NaN allowed)
   * and finite `targets`. Needs at least one row.
   */
  static train(
    rows: readonly (readonly number[])[],
    targets: readonly number[],
    options: ForestOptions,
  ): RandomForest {
    const n = rows.length;
    const width = rows[0]?.length ?? 0;
    const thresholds: number[][] = [];
    const binned: Uint8Array[] = [];
    for (let f = 0; f < width; f++) {
      const column = new Float64Array(n);
      for (let i = 0; i < n; i++) column[i] = rows[i]![f]!;
      const cuts = binThresholds(column, options.bins);
      thresholds.push(cuts);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = binOf(column[i]!, cuts);
      binned.push(b);
    }
    const y = Float64Array.from(targets);
    const trees: TreeJson[] = [];
    for (let k = 0; k < options.trees; k++) {
      const rng = Rng.derive(options.seed, k);
      const sample = new Int32Array(n);
      for (let i = 0; i < n; i++) sample[i] = rng.int(n);
      trees.push(growTree(binned, thresholds, y, sample, options, rng));
    }
    return new RandomForest({ options, thresholds, trees });
  }

  /** Each tree's prediction for one feature row. */
  treePredictions(row: readonly number[]): number[] {
    const { thresholds, trees } = this.json;
    const bins = thresholds.map((cuts, f) => binOf(row[f]!, cuts));
    return trees.map((tree) => {
      let node = 0;
      while (tree.feature[node]! >= 0) {
        const b = bins[tree.feature[node]!]!;
        const goLeft = b === 0 ? tree.missingLeft[node] === 1 : b <= tree.bin[node]!;
        node = goLeft ? tree.left[node]! : tree.right[node]!;
      }
      return tree.value[node]!;
    });
  }
}

interface Split {
  feature: number;
  bin: number;
  missingLeft: boolean;
  score: number;
}

function growTree(
  binned: readonly Uint8Array[],
  thresholds: readonly number[][],
  y: Float64Array,
  sample: Int32Array,
  options: ForestOptions,
  rng: Rng,
): TreeJson {
  const tree: TreeJson = { feature: [], bin: [], missingLeft: [], left: [], right: [], value: [] };
  const width = binned.length;
  const tried = Math.max(1, Math.round(width * options.featureFraction));
  const featureOrder = Array.from({ length: width }, (_, f) => f);
  const count = new Float64Array(256);
  const sum = new Float64Array(256);

  const addNode = (): number => {
    tree.feature.push(-1);
    tree.bin.push(0);
    tree.missingLeft.push(0);
    tree.left.push(-1);
    tree.right.push(-1);
    tree.value.push(0);
    return tree.feature.length - 1;
  };

  const bestSplit = (lo: number, hi: number, total: number): Split | undefined => {
    const n = hi - lo;
    let best: Split | undefined;
    const parentScore = (total * total) / n;
    for (let i = 0; i < tried; i++) {
      const j = i + rng.int(width - i);
      const f = featureOrder[j]!;
      featureOrder[j] = featureOrder[i]!;
      featureOrder[i] = f;
      const column = binned[f]!;
      const lastBin = thresholds[f]!.length + 1;
      count.fill(0, 0, lastBin + 1);
      sum.fill(0, 0, lastBin + 1);
      for (let r = lo; r < hi; r++) {
        const row = sample[r]!;
        const b = column[row]!;
        count[b]!++;
        sum[b]! += y[row]!;
      }
      const missingCount = count[0]!;
      const missingSum = sum[0]!;
      let leftCount = 0;
      let leftSum = 0;
      for (let b = 1; b <= lastBin; b++) {
        if (count[b] === 0) continue;
        leftCount += count[b]!;
        leftSum += sum[b]!;
        const withMissing = missingCount > 0 ? 2 : 1;
        for (let side = 0; side < withMissing; side++) {
          const missingLeft = side === 1;
          const lc = missingLeft ? leftCount + missingCount : leftCount;
          const rc = n - lc;
          if (lc < options.minLeaf || rc < options.minLeaf) continue;
          const ls = missingLeft ? leftSum + missingSum : leftSum;
          const rs = total - ls;
          const score = (ls * ls) / lc + (rs * rs) / rc;
          if (
            score > parentScore + 1e-9 * Math.abs(parentScore) &&
            (best === undefined || score > best.score)
          ) {
            best = { feature: f, bin: b, missingLeft, score };
          }
        }
      }
    }
    return best;
  };

  const stack: { node: number; lo: number; hi: number; depth: number }[] = [
    { node: addNode(), lo: 0, hi: sample.length, depth: 0 },
  ];
  while (stack.length > 0) {
    const { node, lo, hi, depth } = stack.pop()!;
    let total = 0;
    for (let r = lo; r < hi; r++) total += y[sample[r]!]!;
    tree.value[node] = total / (hi - lo);
    if (depth >= options.maxDepth || hi - lo < 2 * options.minLeaf) continue;
    const split = bestSplit(lo, hi, total);
    if (split === undefined) continue;
    const column = binned[split.feature]!;
    let mid = lo;
    for (let r = lo; r < hi; r++) {
      const b = column[sample[r]!]!;
      const goLeft = b === 0 ? split.missingLeft : b <= split.bin;
      if (goLeft) {
        const tmp = sample[mid]!;
        sample[mid] = sample[r]!;
        sample[r] = tmp;
        mid++;
      }
    }
    tree.feature[node] = split.feature;
    tree.bin[node] = split.bin;
    tree.missingLeft[node] = split.missingLeft ? 1 : 0;
    const left = addNode();
    const right = addNode();
    tree.left[node] = left;
    tree.right[node] = right;
    stack.push({ node: left, lo, hi: mid, depth: depth + 1 });
    stack.push({ node: right, lo: mid, hi, depth: depth + 1 });
  }
  return tree;
}
