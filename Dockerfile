# syntax=docker/dockerfile:1
# regate: policy enforcement point. Multi-stage build:
#   opa     — the pinned opa CLI (official static binary) to compile policy bundles
#   build   — TypeScript → dist/, example bundles
#   runtime — node:24 slim, production dependencies only, non-root
ARG NODE_IMAGE=node:24-bookworm-slim
ARG OPA_VERSION=1.22.2

FROM openpolicyagent/opa:${OPA_VERSION}-static AS opa

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY rego ./rego
COPY examples ./examples
COPY --from=opa /opa /usr/local/bin/opa
RUN npm run build \
 && OPA_BIN=/usr/local/bin/opa node scripts/build-policy.mjs \
 && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# V8 grows the young generation to 2 × 64 MiB under a high allocation rate, whatever the
# container's memory limit. 16 MiB semi-spaces lower the peak RSS at the same throughput
# (A/B at ~5k req/s: 304–332 MB without, 238–241 MB with); saturated, regate still
# measured ~300 MB steady RSS (329 MB peak) — size memory limits for that (bench/README.md).
# Override with -e NODE_OPTIONS=... ; `npm run bench` runs regate with this same value.
ENV NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Envoy's ext_authz protos, loaded at startup by the envoy_grpc authz listener.
COPY proto ./proto
COPY --from=build /src/examples ./examples
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
# 8080: proxy; 9090: admin (/metrics, /healthz, /readyz) — keep the admin port off public networks.
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve", "--config", "/etc/regate/regate.yaml"]
