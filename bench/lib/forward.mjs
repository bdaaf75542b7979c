// The forwarding step shared by the comparison proxies (b) and (e): one undici
// `dispatch` per request whose handler writes the upstream response straight
// into the client's ServerResponse — the same technique as regate's
// src/upstream/forward.ts, without its policy and error taxonomy, so the
// comparison measures enforcement and not two ways of proxying.

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/** Forward `req` to `pool` with `headers`; errors answer 502. */
export function forwardTo(pool, req, res, headers) {
  const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
  const body = hasBody || req.headers['transfer-encoding'] !== undefined ? req : null;
  pool.dispatch({ path: req.url, method: req.method, headers, body }, new Handler(res));
}

class Handler {
  constructor(res) {
    this.res = res;
  }
  onRequestStart() {}
  onResponseStart(controller, statusCode, headers) {
    if (statusCode < 200) return;
    const out = {};
    for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
    this.res.writeHead(statusCode, out);
  }
  onResponseData(controller, chunk) {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }
  onResponseEnd() {
    this.res.end();
  }
  onResponseError(controller, err) {
    if (this.res.headersSent) {
      this.res.destroy(err);
      return;
    }
    this.res.writeHead(502, { 'content-type': 'application/json' });
    this.res.end('{"error":"upstream"}');
  }
}
