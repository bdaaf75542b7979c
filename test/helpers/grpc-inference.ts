/**
 * A real KServe-v2-style gRPC inference server (@grpc/grpc-js, cleartext
 * HTTP/2) for tests behind regate, and a client for it. The server records
 * the metadata every call arrived with, answers with custom initial metadata
 * and trailers, and `model_name: "fail"` answers NOT_FOUND with a message.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export const INFERENCE_PROTO = fileURLToPath(new URL('../fixtures/grpc/inference.proto', import.meta.url));

export interface InferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  inputs?: { name: string; datatype: string; shape: number[]; fp32_contents: number[] }[];
}
export interface InferResponse {
  model_name: string;
  id: string;
  outputs: { name: string; datatype: string; shape: string[] | number[]; fp32_contents: number[] }[];
}

export interface InferenceClient extends grpc.Client {
  ModelInfer(req: InferRequest, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: InferResponse) => void): grpc.ClientUnaryCall;
  ModelStreamInfer(req: InferRequest, md: grpc.Metadata): grpc.ClientReadableStream<InferResponse>;
}

type ClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => InferenceClient;

function load(): { service: grpc.ServiceDefinition; Client: ClientCtor } {
  const def = protoLoader.loadSync(INFERENCE_PROTO, { keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: ClientCtor & { service: grpc.ServiceDefinition } } };
  return { service: pkg.inference.GRPCInferenceService.service, Client: pkg.inference.GRPCInferenceService };
}

export interface InferenceServer {
  readonly address: string;
  /** Metadata of every call received, in order: name → values. */
  readonly calls: { method: string; metadata: Record<string, string[]> }[];
  close(): Promise<void>;
}

function plain(md: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = md.get(k).map(String) ?? [String(v)];
  return out;
}

/** `tls`: serve over TLS (ALPN h2) with this certificate, as a model server behind `protocol: h2`. */
export async function startInferenceServer(options: { tls?: { cert: Buffer; key: Buffer } } = {}): Promise<InferenceServer> {
  const { service } = load();
  const server = new grpc.Server();
  const calls: InferenceServer['calls'] = [];
  const trailers = (): grpc.Metadata => {
    const t = new grpc.Metadata();
    t.set('x-model-latency-ms', '3');
    return t;
  };
  const sum = (req: InferRequest): number => (req.inputs ?? []).flatMap((i) => i.fp32_contents).reduce((a, b) => a + b, 0);
  server.addService(service, {
    ModelInfer(call: grpc.ServerUnaryCall<InferRequest, InferResponse>, cb: grpc.sendUnaryData<InferResponse>) {
      calls.push({ method: 'ModelInfer', metadata: plain(call.metadata) });
      const initial = new grpc.Metadata();
      initial.set('x-served-by', 'test-model-server');
      call.sendMetadata(initial);
      if (call.request.model_name === 'fail') {
        cb({ code: grpc.status.NOT_FOUND, details: 'model "fail" is not loaded', metadata: trailers() } as grpc.ServiceError);
        return;
      }
      cb(null, { model_name: call.request.model_name, id: call.request.id ?? '', outputs: [{ name: 'sum', datatype: 'FP32', shape: [1], fp32_contents: [sum(call.request)] }] }, trailers());
    },
    ModelStreamInfer(call: grpc.ServerWritableStream<InferRequest, InferResponse>) {
      calls.push({ method: 'ModelStreamInfer', metadata: plain(call.metadata) });
      for (let i = 0; i < 3; i++) {
        call.write({ model_name: call.request.model_name, id: `chunk-${i}`, outputs: [{ name: 'token', datatype: 'FP32', shape: [1], fp32_contents: [i] }] });
      }
      call.end(trailers());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', options.tls === undefined ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(null, [{ cert_chain: options.tls.cert, private_key: options.tls.key }], false), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** A client for `address` (host:port): cleartext HTTP/2 with prior knowledge, or `credentials` (TLS). */
export function inferenceClient(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): InferenceClient {
  const { Client } = load();
  return new Client(address, credentials, options);
}

export { grpc };
