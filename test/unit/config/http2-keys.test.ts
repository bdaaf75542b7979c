/** The HTTP/2 and gRPC keys: listen.proxy.http2, upstreams.<id>.protocol, routes[].grpc, and their cross-checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';
const base = (upstreams: string, routes: string, listen = ''): string =>
  `${listen}upstreams:\n${upstreams}policy: {bundle: b.tar.gz, default_entrypoint: x}\nroutes:\n${routes}`;
const GRPC_ROUTE = '  - {id: g, match: {methods: [POST], path: "/inference.GRPCInferenceService/{method}"}, upstream: m, auth: none, grpc: true}\n';

const problems = (text: string): string[] => configProblems(text, FILE);

describe('HTTP/2 and gRPC config', () => {
  it('loads a gRPC route to an h2c upstream with h2c on the proxy listener', () => {
    const c = parseConfig(base('  m: {url: "http://127.0.0.1:8001", protocol: h2c}\n', GRPC_ROUTE, 'listen: {proxy: {http2: {h2c: true, max_resets: 50}}}\n'), FILE);
    assert.equal(c.listen.proxy.http2.h2c, true);
    assert.equal(c.listen.proxy.http2.max_resets, 50);
    assert.equal(c.listen.proxy.http2.max_concurrent_streams, 100);
    assert.equal(c.upstreams.m!.protocol, 'h2c');
    assert.equal(c.routes[0]!.grpc, true);
  });

  it('refuses h2c with an https:// URL and h2 with an http:// URL', () => {
    assert.ok(problems(base('  m: {url: "https://a", protocol: h2c}\n', '  - {id: r, match: {methods: [GET], path: /}, upstream: m, auth: none}\n')).some((m) => /\/upstreams\/m\/protocol.*must be http:\/\//.test(m)));
    assert.ok(problems(base('  m: {url: "http://a", protocol: h2}\n', '  - {id: r, match: {methods: [GET], path: /}, upstream: m, auth: none}\n')).some((m) => /\/upstreams\/m\/protocol.*must be https:\/\//.test(m)));
  });

  it('offers h2 by ALPN on a TLS listener by default; h2: false turns it off', () => {
    const route = '  - {id: r, match: {methods: [GET], path: /}, upstream: m, auth: none}\n';
    const tls = '{cert_file: /etc/regate/cert.pem, key_file: /etc/regate/key.pem}';
    assert.equal(parseConfig(base('  m: {url: "http://a"}\n', route, `listen: {proxy: {tls: ${tls}}}\n`), FILE).listen.proxy.http2.h2, true);
    assert.equal(parseConfig(base('  m: {url: "http://a"}\n', route, `listen: {proxy: {tls: ${tls}, http2: {h2: false}}}\n`), FILE).listen.proxy.http2.h2, false);
  });

  it('refuses h2c on a TLS listener, pointing at ALPN', () => {
    const route = '  - {id: r, match: {methods: [GET], path: /}, upstream: m, auth: none}\n';
    const listen = 'listen: {proxy: {tls: {cert_file: /etc/regate/cert.pem, key_file: /etc/regate/key.pem}, http2: {h2c: true}}}\n';
    assert.ok(problems(base('  m: {url: "http://a"}\n', route, listen)).some((m) => /\/listen\/proxy\/http2\/h2c.*negotiated by ALPN \(listen\.proxy\.http2\.h2/.test(m)));
  });

  it('loads an h2 upstream with tls (CA, client certificate, servername, min_version)', () => {
    const up = '  m: {url: "https://model:8443", protocol: h2, tls: {ca_file: /etc/regate/ca.pem, cert_file: /etc/regate/c.pem, key_file: /etc/regate/k.pem, servername: model.internal, min_version: TLSv1.3}}\n';
    const c = parseConfig(base(up, GRPC_ROUTE), FILE);
    assert.equal(c.upstreams.m!.protocol, 'h2');
    assert.equal(c.upstreams.m!.tls?.servername, 'model.internal');
    assert.equal(c.upstreams.m!.tls?.min_version, 'TLSv1.3');
    // h2c is cleartext: tls needs an https:// url.
    assert.ok(problems(base('  m: {url: "http://a", protocol: h2c, tls: {ca_file: /etc/regate/ca.pem}}\n', GRPC_ROUTE)).some((m) => /\/upstreams\/m\/tls.*https:\/\//.test(m)));
  });

  it('refuses a gRPC route to an HTTP/1.1 upstream', () => {
    assert.ok(problems(base('  m: {url: "http://a"}\n', GRPC_ROUTE)).some((m) => /\/routes\/0\/grpc.*HTTP\/2 upstream/.test(m)));
  });

  it('refuses a gRPC route with other methods than POST, or a path that is not two segments', () => {
    const up = '  m: {url: "http://a", protocol: h2c}\n';
    assert.ok(problems(base(up, '  - {id: g, match: {methods: [GET, POST], path: "/a.S/M"}, upstream: m, auth: none, grpc: true}\n')).some((m) => /\/routes\/0\/match\/methods.*POST only/.test(m)));
    assert.ok(problems(base(up, '  - {id: g, match: {methods: [POST], path: "/a.S/{rest*}"}, upstream: m, auth: none, grpc: true}\n')).some((m) => /\/routes\/0\/match\/path.*two segments/.test(m)));
    assert.ok(problems(base(up, '  - {id: g, match: {methods: [POST], path: "/a/b/c"}, upstream: m, auth: none, grpc: true}\n')).some((m) => /two segments/.test(m)));
  });

  it('refuses out-of-range HTTP/2 limits and unknown keys', () => {
    const route = '  - {id: r, match: {methods: [GET], path: /}, upstream: m, auth: none}\n';
    assert.ok(problems(base('  m: {url: "http://a"}\n', route, 'listen: {proxy: {http2: {max_concurrent_streams: 0}}}\n')).some((m) => /max_concurrent_streams/.test(m)));
    assert.ok(problems(base('  m: {url: "http://a"}\n', route, 'listen: {proxy: {http2: {alpn: true}}}\n')).some((m) => /unknown key "alpn"/.test(m)));
    assert.ok(problems(base('  m: {url: "http://a", protocol: http2}\n', route)).some((m) => /protocol/.test(m)));
  });
});
