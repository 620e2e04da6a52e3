/**
 * Runs async tasks one at a time, in call order; a failed task does not stop
 * the next. For a resource that takes one operation at a time, such as a
 * DuckDB connection.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Settles once every task queued so far has settled. */
  drain(): Promise<void> {
    return this.tail;
  }
}
