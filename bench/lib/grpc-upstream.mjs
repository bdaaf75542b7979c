#!/usr/bin/env node
// The gRPC scenarios' upstream: a @grpc/grpc-js server implementing the KServe-v2-style
// ModelInfer (unary) of test/fixtures/grpc/inference.proto over h2c, answering every
// call with the same small result. Its own process; prints `{"port":N}` once listening.
//
// Usage: node bench/lib/grpc-upstream.mjs <inference.proto>
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const def = protoLoader.loadSync(process.argv[2], { keepCase: true, longs: Number, defaults: true });
const service = grpc.loadPackageDefinition(def).inference.GRPCInferenceService.service;
const server = new grpc.Server();
const RESULT = { model_name: 'sentiment', id: 'bench', outputs: [{ name: 'score', datatype: 'FP32', shape: [1], fp32_contents: [0.91] }] };
server.addService(service, {
  ModelInfer(_call, cb) {
    cb(null, RESULT);
  },
  ModelStreamInfer(call) {
    call.end();
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
