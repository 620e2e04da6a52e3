/** Reading Server-Sent Events (`GET /api/live`) from a fetch body in tests. */
export class EventReader {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /**
   * The data of the next event called `name` for which `accept` holds (other
   * events are skipped); null when the stream ends first.
   */
  async next<T>(name: string, accept: (data: T) => boolean = () => true): Promise<T | null> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== name || data === undefined) continue;
        const parsed = JSON.parse(data) as T;
        if (accept(parsed)) return parsed;
        continue;
      }
      const { value, done } = await this.reader.read();
      if (done) return null;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** Closes the stream from this side. */
  cancel(): Promise<void> {
    return this.reader.cancel();
  }
}
