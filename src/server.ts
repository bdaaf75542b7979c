import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import http, { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import https from 'node:https';
import http2, { type Http2SecureServer, type Http2Server } from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Config, Http2Config, ServingListenerConfig } from './config/types.ts';
import { ConfigError, ConfigErrors } from './errors.ts';
import { closeBodyGate, openBodyGate } from './http/body-gate.ts';
import { inOrder } from './http/pipelining.ts';
import { sendProblem } from './http/problem.ts';
import { ConnectionTracker } from './lifecycle/connections.ts';
import { InFlight } from './lifecycle/inflight.ts';
import { createAdminServer } from './observe/admin.ts';
import type { Metrics, TlsListener } from './observe/metrics.ts';
import type { GrpcAuthzServer } from './authz/grpc.ts';
import { createAuthzFrontEnd, type AuthzFrontEnd, type HttpAuthzProtocol } from './authz/http.ts';
import { createH2cListener } from './http2/h2c.ts';
import { attachHttp2, type Http2Sessions } from './http2/server.ts';
import { handle } from './pipeline/handle.ts';
import { handleUpgrade } from './pipeline/websocket.ts';
import { asksForWebSocket } from './http/websocket.ts';
import { TunnelSet } from './lifecycle/tunnels.ts';
import { CLOSE_GRACE_MS } from './upstream/tunnel.ts';
import type { Runtime } from './runtime.ts';
import { ListenerTlsReloader, readListenerTls, refuseRenegotiation, serverTlsOptions, TlsMaterialError, type ListenerTlsMaterial } from './tls/server-context.ts';

/**
 * The Envoy ext_authz gRPC front end, loaded only when `listen.authz.protocol` is
 * `envoy_grpc`: @grpc/grpc-js, @grpc/proto-loader and protobufjs cost ~5 MB of RSS
 * at idle (heap, code and the binary's pages they touch) in every process that imports them
 * (issue 11). `require` of this ES module is synchronous, as the constructor is.
 */
function loadGrpcAuthz(): typeof import('./authz/grpc.ts') {
  const file = import.meta.url.endsWith('.ts') ? './authz/grpc.ts' : './authz/grpc.js';
  return createRequire(import.meta.url)(file) as typeof import('./authz/grpc.ts');
}

/** What a {@link RegateServer} is built from: listeners and limits come from the startup config. */
export interface RegateServerOptions {
  /** The startup config: `listen.*` and `limits.max_header_bytes` are fixed for the process's life. */
  readonly config: Config;
  /** Process-wide metrics: `/metrics` serves them before any runtime is active. */
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Bind the admin listener. Default true. A cluster worker (`workers` > 1)
   * does not: the primary serves /metrics and /readyz for every worker, and
   * asks each worker for its {@link RegateServer.readiness} over IPC.
   */
  readonly adminListener?: boolean;
}

/** {@link RegateServer.drain} timing (config `shutdown`). */
export interface DrainOptions {
  /** Time in-flight requests get once the listener is closed; the rest is cut. */
  readonly graceMs: number;
  /** Time between readiness turning false and the listener closing. */
  readonly drainDelayMs: number;
}

/**
 * The proxy and admin listeners around a swappable {@link Runtime}.
 *
 * `current` is replaced atomically by `swap()`; each request reads it once on
 * arrival, so in-flight requests finish on the runtime they started with, and
 * are counted per runtime so the old one is closed exactly when its last
 * request ends ({@link drained}). Until a first runtime is active (a remote
 * bundle may arrive after listening starts) the proxy answers 503 `not_ready`.
 */
export class RegateServer {
  #current: Runtime | null = null;
  #draining = false;
  /** The proxy listener: `http.Server`; with `listen.proxy.tls`, `https.Server`, or node's secure HTTP/2 server (`http2.h2`, ALPN). */
  readonly proxy: Server;
  readonly admin: Server;
  /** The authorization service listener (`listen.authz`), or null. */
  readonly authz: Server | null = null;
  /** The Envoy ext_authz gRPC listener (`listen.authz.protocol: envoy_grpc`), or null. */
  readonly #grpc: GrpcAuthzServer | null = null;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #config: Config;
  readonly #inFlight = new InFlight<Runtime>();
  readonly #adminListener: boolean;
  /** Handler promises still running: on shutdown, their decision-log records are awaited. */
  readonly #handling = new Set<Promise<void>>();
  /** Per-socket request state: what the drain closes, and when. */
  readonly #connections: ConnectionTracker;
  readonly #authzConnections: ConnectionTracker | null = null;
  /** Open WebSocket tunnels of the proxy listener: closed with 1001 at the drain deadline. */
  readonly #tunnels = new TunnelSet();
  /** Certificate hot reload of the TLS listeners (`listen.*.tls`). */
  readonly #tlsReloaders: ListenerTlsReloader[] = [];
  /** `listen.proxy.http2.h2c`: the socket that listens (it hands connections to `proxy` or the HTTP/2 server), else null. */
  readonly #h2cListener: net.Server | null = null;
  readonly #h2: Http2Server | null = null;
  readonly #h2Sessions: Http2Sessions | null = null;

  constructor(options: RegateServerOptions) {
    const { config, metrics, logger } = options;
    this.#adminListener = options.adminListener ?? true;
    this.#config = config;
    this.#logger = logger;
    this.#metrics = metrics;
    const limits = config.limits;
    const serverOptions = {
        maxHeaderSize: limits.max_header_bytes,
        // Slow-loris bounds: the whole request head within 30 s; idle keep-alive 65 s
        // (longer than common LB idle timeouts, so the LB closes first).
        headersTimeout: 30_000,
        // The body's timeouts are regate's own (limits.body_idle_timeout_ms, limits.request_timeout_ms,
        // src/http/body-gate.ts): node's requestTimeout would destroy the socket without a response.
        requestTimeout: 0,
        keepAliveTimeout: 65_000,
        requireHostHeader: true,
        joinDuplicateHeaders: false,
    };
    const h2 = config.listen.proxy.http2;
    // TLS with `http2.h2` (the default): one server negotiates h2 or http/1.1 by ALPN.
    const alpnH2 = config.listen.proxy.tls !== undefined && h2.h2;
    const onProxyRequest = (req: IncomingMessage, res: ServerResponse): void => this.#onRequest(req, res, null);
    this.proxy = this.#createListener(
      'proxy',
      config.listen.proxy,
      // Only a WebSocket handshake becomes an `upgrade` event; other upgrades (h2c, ...) are plain
      // requests whose `Upgrade` is dropped as hop-by-hop (RFC 9110 §7.8: a server may ignore it).
      { ...serverOptions, shouldUpgradeCallback: (req: IncomingMessage) => asksForWebSocket(req.headers) },
      onProxyRequest,
      alpnH2 ? h2 : null,
    );
    if (alpnH2) {
      // HTTP/1.1 connections of the secure HTTP/2 server reach onProxyRequest through node's HTTP/1.1
      // connection handling (the same parser options, events and trackers as the https listener).
      this.#h2Sessions = attachHttp2(this.proxy as unknown as Http2SecureServer, { settings: h2, proto: 'https', metrics: metrics.http2, logger, run: (work) => this.#run(work), http1: onProxyRequest });
    }
    this.proxy.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#connections = new ConnectionTracker(this.proxy, undefined, config.listen.proxy.tls !== undefined);
    this.proxy.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => onClientError(err, socket, this.#metrics));
    // With a listener, node no longer answers `Expect: 100-continue` itself: regate sends
    // 100 only once the body may be read (src/http/body-gate.ts).
    this.proxy.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res, null));
    // CONNECT: without a listener node closes the socket silently. Answer it through the
    // pipeline instead (400 connect_not_supported, logged and counted), then close.
    this.proxy.on('connect', (req: IncomingMessage, socket: Socket) => this.#onConnect(req, socket, null));
    if (h2.h2c) {
      this.#h2 = http2.createServer({ maxSessionMemory: 32, settings: { maxConcurrentStreams: h2.max_concurrent_streams, maxHeaderListSize: h2.max_header_list_bytes, enablePush: false } });
      this.#h2Sessions = attachHttp2(this.#h2, { settings: h2, proto: 'http', metrics: metrics.http2, logger, run: (work) => this.#run(work) });
      // The head timeout of HTTP/1.1 (30 s) also bounds a connection that has not said which protocol it speaks.
      this.#h2cListener = createH2cListener(this.proxy, this.#h2, 30_000);
    }
    const authz = config.listen.authz;
    if (authz !== undefined && authz.protocol === 'envoy_grpc') {
      this.#grpc = loadGrpcAuthz().createGrpcAuthzServer({
        runtime: () => this.#current,
        track: (rt, work) => {
          this.#inFlight.enter(rt);
          const done = work.finally(() => {
            this.#inFlight.leave(rt);
            this.#handling.delete(done);
          });
          this.#handling.add(done);
        },
      });
    } else if (authz !== undefined) {
      // The same parser limits, timeouts, pipelining and drain: check requests are client requests, relayed.
      const frontEnd = createAuthzFrontEnd(authz as typeof authz & { protocol: HttpAuthzProtocol });
      const server = this.#createListener('authz', authz, serverOptions, (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res, frontEnd));
      this.authz = server;
      this.#authzConnections = new ConnectionTracker(server, undefined, authz.tls !== undefined);
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => onClientError(err, socket, this.#metrics));
      server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res, frontEnd));
      server.on('connect', (req: IncomingMessage, socket: Socket) => this.#onConnect(req, socket, frontEnd));
    }
    this.admin = createAdminServer({
      registry: () => this.#metrics.registry,
      ready: () => this.readiness(),
    });
  }

  /**
   * A plaintext or, with `tls`, an HTTPS listener (ALPN `http/1.1`) with the same parser
   * options; with `tls` and `h2` settings, a secure HTTP/2 server offering ALPN `h2`
   * then `http/1.1` (`allowHTTP1`: HTTP/1.1 clients get node's HTTP/1.1 server with
   * the same options; the caller attaches the HTTP/2 front end and `onRequest`).
   * Its TLS files are read now (a problem stops startup, naming the key) and
   * watched once listening ({@link ListenerTlsReloader}).
   */
  #createListener(
    name: TlsListener,
    listener: ServingListenerConfig,
    options: http.ServerOptions,
    onRequest: (req: IncomingMessage, res: ServerResponse) => void,
    h2: Http2Config | null = null,
  ): Server {
    const tlsConfig = listener.tls;
    if (tlsConfig === undefined) return http.createServer(options, onRequest);
    let material: ListenerTlsMaterial;
    let tlsOptions: https.ServerOptions;
    try {
      material = readListenerTls(tlsConfig);
      tlsOptions = serverTlsOptions(tlsConfig, material);
    } catch (err) {
      if (!(err instanceof TlsMaterialError)) throw err;
      const key = `/listen/${name}/tls${err.key === '' ? '' : `/${err.key}`}`;
      throw new ConfigErrors([new ConfigError(this.#config.source, key, err.message, { cause: err })]);
    }
    // Node's https.Server is an http.Server on TLS sockets: the same events, parser and limits.
    // The secure HTTP/2 server stores the same HTTP/1.1 options for its `allowHTTP1` connections.
    const server = (
      h2 === null
        ? https.createServer({ ...options, ...tlsOptions, ALPNProtocols: ['http/1.1'] }, onRequest)
        : http2.createSecureServer({
            ...(options as http2.SecureServerOptions),
            ...tlsOptions,
            allowHTTP1: true,
            ALPNProtocols: ['h2', 'http/1.1'],
            maxSessionMemory: 32,
            settings: { maxConcurrentStreams: h2.max_concurrent_streams, maxHeaderListSize: h2.max_header_list_bytes, enablePush: false },
          })
    ) as unknown as Server;
    server.on('secureConnection', refuseRenegotiation);
    // A failed handshake (no or an unverified client certificate under `required`, an old
    // protocol version, garbage): nothing reached HTTP; counted, and node destroys the socket.
    server.on('tlsClientError', (_err: Error, socket: TLSSocket) => {
      this.#metrics.tlsHandshakeFailure(name);
      socket.destroy();
    });
    const reloader = new ListenerTlsReloader(server as unknown as https.Server, tlsConfig, material, {
      reloaded: (result, err) => {
        this.#metrics.tlsReload(name, result);
        if (result === 'success') this.#logger.info({ listener: name, cert_file: tlsConfig.cert_file }, 'TLS certificate reloaded');
        else this.#logger.error({ listener: name, cert_file: tlsConfig.cert_file, err: err?.message }, 'TLS certificate files refused: the previous certificate keeps serving');
      },
    });
    this.#tlsReloaders.push(reloader);
    return server;
  }

  /** Read the TLS listeners' files now instead of waiting for a file event (tests). */
  checkTlsFiles(): Promise<void> {
    return Promise.all(this.#tlsReloaders.map((r) => r.check())).then(() => undefined);
  }

  /** What /readyz answers: not ready while draining, else the active runtime's checks. */
  readiness(): { ready: boolean; checks: Record<string, boolean> } {
    if (this.#draining) return { ready: false, checks: { draining: false } };
    // Config is loaded (the server exists); policy and keys come with the first runtime.
    return this.#current?.readiness() ?? { ready: false, checks: { config: true, policy: false, keys: false } };
  }

  /** The active runtime; null until a first version is active. */
  get runtime(): Runtime | null {
    return this.#current;
  }

  /** Requests in flight on `rt` right now. */
  inFlight(rt: Runtime): number {
    return this.#inFlight.count(rt);
  }

  /** Swap in a new runtime; returns the old one (close it once {@link drained}). */
  swap(next: Runtime): Runtime | null {
    const old = this.#current;
    this.#current = next;
    return old;
  }

  /** Resolves when no request runs on `rt` any more: then its resources can be closed. */
  drained(rt: Runtime): Promise<void> {
    return this.#inFlight.drained(rt);
  }

  /**
   * One request on the proxy listener (`authz` null) or the authz listener: the same runtime,
   * in-flight count and drain. Requests on one connection are handled one after the other
   * (src/http/pipelining.ts).
   */
  #onRequest(req: IncomingMessage, res: ServerResponse, authz: AuthzFrontEnd | null): void {
    // While draining, a request on an open keep-alive connection is served, then the connection closes.
    // Registered on arrival, queued or not: the tracker marks the last request received on a socket.
    (authz === null ? this.#connections : this.#authzConnections!).onRequest(req, res);
    inOrder(req, res, () => this.#handle(req, res, authz));
  }

  #handle(req: IncomingMessage, res: ServerResponse, authz: AuthzFrontEnd | null): Promise<void> {
    const rt = this.#current;
    if (rt === null) {
      this.#notReady(req, res);
      return Promise.resolve();
    }
    this.#inFlight.enter(rt);
    openBodyGate(req, res, rt.config.limits);
    // The decision log is full (overload: block): wait for room before any work, so no answer lacks its record.
    const admitted = rt.admission();
    const run = (): Promise<void> => (authz === null ? handle(rt, req, res) : authz.handle(rt, req, res));
    const done = (admitted === undefined ? run() : admitted.then(run)).finally(() => {
      closeBodyGate(req);
      this.#inFlight.leave(rt);
      this.#handling.delete(done);
    });
    this.#handling.add(done);
    return done;
  }

  /**
   * One HTTP/2 request's work on the active runtime, counted as #handle counts an HTTP/1.1
   * one (in flight per runtime, decision-log admission, awaited on shutdown). False: no runtime yet.
   */
  #run(work: (rt: Runtime) => Promise<void>): boolean {
    const rt = this.#current;
    if (rt === null) return false;
    this.#inFlight.enter(rt);
    const admitted = rt.admission();
    const done = (admitted === undefined ? work(rt) : admitted.then(() => work(rt))).finally(() => {
      this.#inFlight.leave(rt);
      this.#handling.delete(done);
    });
    this.#handling.add(done);
    return true;
  }

  /** A CONNECT request: node handed over the raw socket; answer on it and close. */
  #onConnect(req: IncomingMessage, socket: Socket, authz: AuthzFrontEnd | null): void {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on('finish', () => {
      res.detachSocket(socket);
      socket.destroySoon();
    });
    socket.on('error', () => socket.destroy());
    this.#onRequest(req, res, authz);
  }

  /**
   * A WebSocket upgrade request: node handed over the raw socket and the bytes after the head.
   * The same runtime, in-flight count, decision-log admission and drain as any request; the
   * request stays in flight for as long as its tunnel lasts (src/pipeline/websocket.ts).
   */
  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    socket.pause();
    // An upgrade pipelined behind a response still being written: no answer can follow it in
    // order, and a WebSocket client never does this (it waits for each answer). Cut.
    if ((socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage != null) {
      socket.destroy();
      return;
    }
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on('finish', () => {
      res.detachSocket(socket);
      socket.destroySoon();
    });
    this.#connections.onRequest(req, res);
    const rt = this.#current;
    if (rt === null) {
      this.#notReady(req, res);
      return;
    }
    this.#inFlight.enter(rt);
    const admitted = rt.admission();
    const run = (): Promise<void> => handleUpgrade(rt, req, res, socket, head, this.#tunnels);
    const done = (admitted === undefined ? run() : admitted.then(run))
      .catch((err: unknown) => {
        this.#logger.error({ err }, 'internal error relaying a WebSocket upgrade');
        socket.destroy();
      })
      .finally(() => {
        this.#inFlight.leave(rt);
        this.#handling.delete(done);
      });
    this.#handling.add(done);
  }

  /** No runtime yet: 503, counted (route `_unmatched`, reason `not_ready`); no decision log exists yet. */
  #notReady(req: IncomingMessage, res: ServerResponse): void {
    const startHr = process.hrtime.bigint();
    const decisionId = randomUUID();
    sendProblem(res, 503, { reason: 'not_ready', detail: 'no policy is active yet; retry shortly', decisionId }, { 'retry-after': '1' });
    try {
      this.#metrics.observe({
        decisionId,
        startedAtNs: BigInt(Date.now()) * 1_000_000n,
        durationNs: Number(process.hrtime.bigint() - startHr),
        routeId: null,
        entrypoint: null,
        input: null,
        result: undefined,
        decision: 'error',
        status: 503,
        reason: 'not_ready',
        authn: { outcome: 'skipped' },
        scopes: [],
        method: req.method ?? 'GET',
        path: (req.url ?? '').slice(0, 256),
      });
    } catch (err) {
      this.#logger.error({ err }, 'recording a not-ready request failed');
    }
  }

  /** Bind the listeners; `admin` is '' when this process serves none (cluster worker); `authz` only when configured. */
  async listen(): Promise<{ proxy: string; admin: string; authz?: string }> {
    const { proxy, admin, authz } = this.#config.listen;
    await listen(this.#h2cListener ?? this.proxy, proxy.port, proxy.host);
    if (this.authz !== null && authz !== undefined) await listen(this.authz, authz.port, authz.host);
    for (const r of this.#tlsReloaders) r.start();
    const grpcUrl = this.#grpc !== null && authz !== undefined ? await this.#grpc.listen(authz.host, authz.port) : undefined;
    const authzUrl = this.authz !== null ? { authz: url(this.authz) } : grpcUrl !== undefined ? { authz: grpcUrl } : {};
    if (!this.#adminListener) {
      // Not "listening": that line announces the whole service, and the cluster primary writes it.
      const urls = { proxy: url(this.#h2cListener ?? this.proxy), admin: '', ...authzUrl };
      this.#logger.info({ proxy: urls.proxy, ...authzUrl }, 'worker listening');
      return urls;
    }
    await listen(this.admin, admin.port, admin.host);
    const urls = { proxy: url(this.#h2cListener ?? this.proxy), admin: url(this.admin), ...authzUrl };
    this.#logger.info(urls, 'listening');
    return urls;
  }

  /**
   * Graceful stop of the proxy (and authz) listener: readiness turns false, and from this
   * moment every response not yet started says `Connection: close` (those in
   * flight too), and keep-alive sockets are closed once truly idle
   * ({@link ConnectionTracker}). New connections are still accepted for
   * `drainDelayMs` (load balancers see the readiness flip before anything is
   * refused); then the listener closes, and open connections get `graceMs` to
   * finish; a request already received is answered, never reset. Whatever
   * still runs then (an SSE stream) is cut. Resolves once every request's
   * handler has finished, so its decision-log record is written. The admin
   * listener stays up (/readyz says 503) until {@link closeAdmin}.
   */
  async drain(options: DrainOptions): Promise<void> {
    this.#draining = true;
    for (const r of this.#tlsReloaders) r.stop();
    this.#connections.startDraining();
    this.#authzConnections?.startDraining();
    this.#h2Sessions?.startDraining();
    if (options.drainDelayMs > 0) await sleep(options.drainDelayMs);
    // net's close, not http's: http.Server#close() also runs closeIdleConnections(), which
    // destroys sockets whose next request is already on its way (issue 16).
    const listeners: net.Server[] = [this.#h2cListener ?? this.proxy, ...(this.authz === null ? [] : [this.authz])];
    const trackers = this.#authzConnections === null ? [this.#connections] : [this.#connections, this.#authzConnections];
    const closed = Promise.all(listeners.map((l) => new Promise<void>((resolve) => net.Server.prototype.close.call(l, () => resolve()))));
    // gRPC: no new calls; those running get the same grace, then are cancelled.
    const grpcClosed = this.#grpc?.close(options.graceMs);
    const done = Promise.all([...trackers.map((t) => t.empty()), this.#h2Sessions?.empty(), this.#inFlight.idle()]).then(() => 'done' as const);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), options.graceMs)));
    const why = await Promise.race([done, deadline]);
    clearTimeout(timer);
    for (const t of trackers) t.stop();
    if (why === 'deadline') {
      this.#logger.warn(
        { in_flight: this.#inFlight.total, connections: trackers.reduce((n, t) => n + t.size, 0), grace_ms: options.graceMs },
        'shutdown grace period over: cutting the requests still running',
      );
      // WebSocket tunnels first get their Close frames (1001 going away) and a moment to flush them.
      await this.#tunnels.closeAll(CLOSE_GRACE_MS);
      for (const t of trackers) t.destroyAll();
      this.#h2Sessions?.destroyAll();
    }
    await grpcClosed;
    // Cut exchanges settle promptly (the forwarder sees the client gone); bounded anyway.
    await Promise.race([Promise.allSettled([...this.#handling]), sleep(2_000)]);
    await closed;
  }

  /** Close the admin listener (last: /readyz answers 503 throughout the drain). */
  async closeAdmin(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.admin.close(() => resolve()));
    this.admin.closeAllConnections();
    await closed;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function url(server: net.Server): string {
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  // https.Server and the secure HTTP/2 server are both tls.Server.
  return `${server instanceof tls.Server ? 'https' : 'http'}://${host}:${a.port}`;
}

/**
 * Requests node's parser refuses (smuggling attempts such as Content-Length with
 * Transfer-Encoding, oversized heads, bad syntax) never reach the pipeline; answer
 * them with a problem document instead of node's bare 400, then close.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Socket, metrics: Metrics): void {
  // A response already started on this connection (a pipelined follower is malformed): a second
  // status line would corrupt it; cut the connection instead.
  const inProgress = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET' || inProgress?.headersSent === true) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? 431 : timeout ? 408 : 400;
  const title = tooLarge ? 'Request Header Fields Too Large' : timeout ? 'Request Timeout' : 'Bad Request';
  const reason = tooLarge ? 'header_too_large' : timeout ? 'request_timeout' : 'malformed_request';
  metrics.parserRefusal(reason);
  const body = JSON.stringify({ type: `urn:regate:problem:${reason}`, title, status, detail: 'the request could not be parsed', reason });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
