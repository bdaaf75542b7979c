# syntax=docker/dockerfile:1
# regate: policy enforcement point. Multi-stage build:
#   opa         — the pinned opa CLI (official static binary) to compile policy bundles
#   healthprobe — tools/healthprobe, a static ~2.5 MB HEALTHCHECK binary (no second Node process)
#   build       — TypeScript → dist/, production node_modules
#   examples    — the example policy bundles (demo only)
#   base        — node:24 slim, dist/ + production dependencies, non-root: what both images share
#   demo        — base + examples/ (their bundles AND their published dev signing keys):
#                 `docker build --target demo`, used by docker-compose.yml's quickstart only
#   runtime     — the default target (last stage): the production image, no examples, no keys
#
# Reproducible production builds pin the base images by digest, e.g.
#   docker build --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest> \
#                --build-arg GO_IMAGE=golang:1.26-bookworm@sha256:<digest> .
# (`docker buildx imagetools inspect node:24-bookworm-slim` prints the digest; see README, Deployment).
ARG NODE_IMAGE=node:24-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm
ARG OPA_VERSION=1.22.2

FROM openpolicyagent/opa:${OPA_VERSION}-static AS opa

FROM ${GO_IMAGE} AS healthprobe
WORKDIR /src
COPY tools/healthprobe/ ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /healthprobe .

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY rego ./rego
RUN npm run build \
 && npm prune --omit=dev

FROM build AS examples
COPY examples ./examples
COPY --from=opa /opa /usr/local/bin/opa
RUN OPA_BIN=/usr/local/bin/opa node scripts/build-policy.mjs

FROM ${NODE_IMAGE} AS base
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# OCI image annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
LABEL org.opencontainers.image.title="regate" \
      org.opencontainers.image.description="Policy enforcement point in front of model-serving and data APIs: JWT, OPA Rego (wasm), decision logs, Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/regate/regate" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
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
COPY --from=healthprobe /healthprobe /usr/local/bin/regate-healthprobe
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
# 8080: proxy; 9090: admin (/metrics, /healthz, /readyz) — keep the admin port off public networks.
EXPOSE 8080 9090
# A static binary, not `node -e fetch(...)`: no second Node process every 10 s. With another
# admin address set REGATE_HEALTH_URL (e.g. -e REGATE_HEALTH_URL=http://127.0.0.1:9901/readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/regate-healthprobe", "-timeout", "2s"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve", "--config", "/etc/regate/regate.yaml"]

# The quickstart's image: the example bundles and their PUBLISHED dev signing keys. Never deploy it.
FROM base AS demo
COPY --from=examples /src/examples ./examples
LABEL org.opencontainers.image.title="regate-demo" \
      org.opencontainers.image.description="regate with the repository's examples and their published development keys: for the quickstart only, never for production"

# The production image, and the default target: no examples, no keys.
FROM base AS runtime
