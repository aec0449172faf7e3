import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback that a test can cut: while `blocked`, open connections are destroyed
 * and new ones are closed at once, so the traffic between two replicas is dropped as a network
 * partition would drop it. One proxy per direction of a link.
 */
export class FaultProxy {
  private blocked = false;
  /** Added to everything the target sends back (see `slow`). */
  private delayMs = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((client) => {
      const p = proxy as FaultProxy;
      if (p.blocked) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
      for (const s of [client, upstream]) {
        p.sockets.add(s);
        s.on('close', () => p.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      // Every chunk waits the same delay, so the order is kept.
      upstream.on('data', (chunk: Buffer) => {
        if (p.delayMs === 0) client.write(chunk);
        else setTimeout(() => client.write(chunk), p.delayMs);
      });
      upstream.on('end', () => setTimeout(() => client.end(), p.delayMs));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    proxy = new FaultProxy(server, port);
    return proxy;
  }

  /** Drops every connection through the proxy until `heal`. */
  cut(): void {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.blocked = false;
  }

  /** Delays every answer of the target by `ms` (a slow or distant server). */
  slow(ms: number): void {
    this.delayMs = ms;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
