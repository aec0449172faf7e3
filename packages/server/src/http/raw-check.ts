import type { IncomingHttpHeaders } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/**
 * `POST /v1/check` answered on the TCP connection itself, before node:http parses it.
 *
 * Why: node:http builds an IncomingMessage, a ServerResponse, a headers object and a stream per
 * request, and that plumbing costs more server time than the check (BENCHMARKS.md, "The check on
 * the connection"). Here a request is read straight from the bytes that arrived and answered
 * with one write.
 *
 * Only a strict subset of HTTP/1.1 is read here, and only when all of a request is already in
 * the buffer: the request line `POST /v1/check HTTP/1.1`, well-formed header lines, exactly one
 * Host and one Content-Length, no Transfer-Encoding, Expect, Upgrade or Connection other than
 * keep-alive, and the body complete. The moment a request falls outside that (another route, a
 * request split across reads, a header node:http would refuse, a 401, shutdown), the connection
 * and every byte not yet answered go to node:http, which keeps it from then on: slow clients,
 * chunked bodies, errors and timeouts are all node:http's. Responses already written stay ahead
 * of node:http's, so pipelined answers keep their order.
 */
export interface RawRequest {
  /** The headers the check needs (authorization, x-api-key, x-request-id, content-type). */
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** What the owner of a connection answers; undefined hands the request (and the rest) over. */
export interface RawCheckHandler {
  /** The response, headers in the order they are written, or undefined to hand over. */
  answer(request: RawRequest, remoteAddress: string | undefined): RawResponse | undefined;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly payload: string;
}

export interface RawCheckOptions {
  readonly handler: RawCheckHandler;
  /** Passes a socket to node:http, as its own 'connection' listener would get it. */
  readonly handOff: (socket: Socket) => void;
  /** The body limit: a larger Content-Length goes to node:http (and Fastify's 413). */
  readonly bodyLimitBytes: number;
  /** Longest request head read here; node:http's own limit (`maxHeaderSize`) is the natural one. */
  readonly maxHeadBytes: number;
  /** Most header lines read here; node:http keeps only its first `maxHeadersCount` (2000). */
  readonly maxHeaders: number;
  /**
   * Idle time after which a connection owned here is closed, as node:http's keepAliveTimeout;
   * with none (0), node:http's headersTimeout, which it applies to a silent new connection.
   */
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  /** Where to count; a fresh object otherwise. */
  readonly stats?: RawCheckStats;
}

/** Counts of what the connection layer did; for tests and diagnostics. */
export interface RawCheckStats {
  /** Requests answered on the connection. */
  answered: number;
  /** Connections passed to node:http. */
  handedOff: number;
}

const REQUEST_LINE = Buffer.from('POST /v1/check HTTP/1.1\r\n', 'latin1');
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
/** Bytes written but not yet sent above which reading pauses until they drain. */
const WRITE_HIGH_WATER = 64 * 1024;

/** RFC 9110 token characters (header field names). */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** Header names whose value the check reads. */
const WANTED = new Set(['authorization', 'x-api-key', 'x-request-id', 'content-type']);

/**
 * The connection layer: `take` every accepted socket; `closeIdle` at shutdown. A socket owned
 * here is between requests whenever its handler is not running, so at shutdown it is closed once
 * what was written has been sent.
 */
export class RawCheckConnections {
  readonly stats: RawCheckStats;
  private readonly owned = new Set<Socket>();
  private dateSecond = -1;
  private date = '';

  constructor(private readonly options: RawCheckOptions) {
    this.stats = options.stats ?? { answered: 0, handedOff: 0 };
  }

  take(socket: Socket): void {
    this.owned.add(socket);
    // A request is answered here only when all of it arrived in one read; otherwise it and the
    // rest of the connection go to node:http, so nothing waits here for more bytes.
    const onData = (chunk: Buffer) => {
      let rest: number;
      try {
        rest = this.answerAll(socket, chunk);
      } catch {
        // A fault of ours (the handler answers every error it expects): this connection ends
        // once the answers already made are sent; the process and every other connection go on.
        socket.destroySoon();
        return;
      }
      if (rest < chunk.length) handOff(chunk.subarray(rest));
    };
    // Every listener of this layer, so that a hand-over removes exactly what was added.
    const listeners = {
      data: onData,
      end: () => socket.end(),
      error: () => socket.destroy(),
      timeout: () => socket.destroy(),
      close: () => this.owned.delete(socket),
      drain: () => socket.resume(),
    };
    const handOff = (unread: Buffer) => {
      for (const [event, listener] of Object.entries(listeners)) {
        socket.removeListener(event, listener);
      }
      socket.setTimeout(0);
      this.owned.delete(socket);
      this.stats.handedOff++;
      socket.pause();
      socket.unshift(unread);
      this.options.handOff(socket);
      socket.resume();
    };
    for (const [event, listener] of Object.entries(listeners)) socket.on(event, listener);
    socket.setTimeout(this.options.keepAliveTimeoutMs || this.options.headersTimeoutMs);
  }

  /** Closes every connection owned here once its written answers are sent. */
  closeIdle(): void {
    for (const socket of this.owned) socket.destroySoon();
  }

  /** Closes every connection owned here at once. */
  closeAll(): void {
    for (const socket of this.owned) socket.destroy();
  }

  /**
   * Answers every complete request at the front of `buffer` that this layer may answer; returns
   * the offset of the first byte it did not consume (buffer.length when it answered them all).
   */
  private answerAll(socket: Socket, buffer: Buffer): number {
    let offset = 0;
    let out = '';
    try {
      while (offset < buffer.length) {
        const request = readRequest(buffer, offset, this.options);
        if (request === undefined) break;
        const response = this.options.handler.answer(request.request, socket.remoteAddress);
        if (response === undefined) break;
        out += this.format(response);
        this.stats.answered++;
        offset = request.end;
      }
    } finally {
      // Answers made are written even when a later request in the same read failed: their
      // tokens are spent.
      if (out.length > 0) {
        socket.write(out);
        if (socket.writableLength > WRITE_HIGH_WATER) socket.pause();
      }
    }
    return offset;
  }

  /** The response as node:http writes it for `writeHead` + `end` (one string, UTF-8). */
  private format(response: RawResponse): string {
    let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status]}\r\n`;
    for (const name in response.headers) head += `${name}: ${response.headers[name]}\r\n`;
    head += `Date: ${this.utcDate()}\r\nConnection: keep-alive\r\n`;
    // node:http announces the keep-alive timeout only when there is one.
    const timeout = this.options.keepAliveTimeoutMs;
    if (timeout > 0) head += `Keep-Alive: timeout=${Math.floor(timeout / 1000)}\r\n`;
    return `${head}\r\n${response.payload}`;
  }

  private utcDate(): string {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.dateSecond) {
      this.dateSecond = second;
      this.date = new Date(now).toUTCString();
    }
    return this.date;
  }
}

interface ReadRequest {
  readonly request: RawRequest;
  /** Offset just past the body. */
  readonly end: number;
}

/**
 * The request at `offset` when it is a `POST /v1/check` this layer may read and all of it is in
 * `buffer`; undefined for anything else, which node:http then reads from the same byte.
 */
export function readRequest(
  buffer: Buffer,
  offset: number,
  limits: Pick<RawCheckOptions, 'bodyLimitBytes' | 'maxHeadBytes' | 'maxHeaders'>,
): ReadRequest | undefined {
  if (buffer.length - offset < REQUEST_LINE.length) return undefined;
  if (buffer.compare(REQUEST_LINE, 0, REQUEST_LINE.length, offset, offset + REQUEST_LINE.length)) {
    return undefined;
  }
  const headEnd = buffer.indexOf(HEAD_END, offset + REQUEST_LINE.length - 2);
  if (headEnd < 0 || headEnd - offset > limits.maxHeadBytes) return undefined;
  const headers: IncomingHttpHeaders = {};
  let hosts = 0;
  let lines = 0;
  let contentLength = -1;
  // Header lines run from after the request line up to headEnd + 2 (the last line's CRLF).
  let line = offset + REQUEST_LINE.length;
  const last = headEnd + 2;
  while (line < last) {
    if (++lines > limits.maxHeaders) return undefined;
    const colon = buffer.indexOf(COLON, line);
    if (colon <= line || colon >= last) return undefined;
    for (let i = line; i < colon; i++) if (TOKEN[buffer[i] as number] !== 1) return undefined;
    const eol = buffer.indexOf(CR, colon);
    if (eol < 0 || eol >= last || buffer[eol + 1] !== LF) return undefined;
    let start = colon + 1;
    let stop = eol;
    while (start < stop && (buffer[start] === SPACE || buffer[start] === TAB)) start++;
    while (stop > start && (buffer[stop - 1] === SPACE || buffer[stop - 1] === TAB)) stop--;
    for (let i = start; i < stop; i++) {
      const c = buffer[i] as number;
      if (c < SPACE ? c !== TAB : c === 0x7f) return undefined;
    }
    const name = buffer.toString('latin1', line, colon).toLowerCase();
    switch (name) {
      case 'host':
        hosts++;
        break;
      case 'content-length': {
        if (contentLength >= 0 || stop === start || stop - start > 15) return undefined;
        // node:http allows spaces after the digits, not tabs.
        for (let i = stop; i < eol; i++) if (buffer[i] !== SPACE) return undefined;
        let n = 0;
        for (let i = start; i < stop; i++) {
          const c = buffer[i] as number;
          if (c < 0x30 || c > 0x39) return undefined;
          n = n * 10 + (c - 0x30);
        }
        if (n > limits.bodyLimitBytes) return undefined;
        contentLength = n;
        break;
      }
      case 'connection':
      case 'proxy-connection':
        if (buffer.toString('latin1', start, stop).toLowerCase() !== 'keep-alive') return undefined;
        break;
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return undefined;
      default:
        if (WANTED.has(name)) {
          if (headers[name] !== undefined) return undefined;
          headers[name] = buffer.toString('latin1', start, stop);
        }
    }
    line = eol + 2;
  }
  if (hosts !== 1 || contentLength < 0) return undefined;
  const bodyStart = headEnd + HEAD_END.length;
  const end = bodyStart + contentLength;
  if (end > buffer.length) return undefined;
  return { request: { headers, body: buffer.subarray(bodyStart, end) }, end };
}
