import { createSocket, type Socket } from 'node:dgram';

/**
 * A minimal authoritative DNS server on loopback UDP for discovery tests: answers A queries for
 * one name with the addresses the test sets (TTL 0), "no data" for other types of that name and
 * NXDOMAIN for any other name. Real DNS packets, so the service's resolver is exercised as is.
 */
export class TestDns {
  addresses: string[] = [];
  queries = 0;
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    private readonly name: string,
  ) {}

  static async start(name: string): Promise<TestDns> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const dns = new TestDns(socket, socket.address().port, name.toLowerCase());
    socket.on('message', (msg, from) => {
      const answer = dns.answer(msg);
      if (answer !== undefined) socket.send(answer, from.port, from.address);
    });
    return dns;
  }

  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  private answer(query: Buffer): Buffer | undefined {
    if (query.length < 17) return undefined;
    this.queries++;
    // Question: labels from byte 12, then type and class.
    const labels: string[] = [];
    let at = 12;
    while (at < query.length && query[at] !== 0) {
      const length = query[at] as number;
      labels.push(query.toString('ascii', at + 1, at + 1 + length));
      at += 1 + length;
    }
    const questionEnd = at + 5;
    const type = query.readUInt16BE(at + 1);
    const known = labels.join('.').toLowerCase() === this.name;
    const records = known && type === 1 ? this.addresses : [];
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (known ? 0 : 3), 2); // response, authoritative, rcode
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const answers = records.map((address) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(0, 6); // TTL
      rr.writeUInt16BE(4, 10);
      Buffer.from(address.split('.').map(Number)).copy(rr, 12);
      return rr;
    });
    return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
