# breakdesk as a service (`breakdesk serve`): built with the Rust image, run on Debian slim as a
# non-root user, the store on a volume. See docs/install.md, "Container".
#
#   docker build -t breakdesk \
#     --build-arg BREAKDESK_BUILD_COMMIT="$(git rev-parse HEAD)" \
#     --build-arg BREAKDESK_BUILD_DATE="$(git log -1 --format=%cd --date=short)" .
#   docker run -d -p 8080:8080 -v breakdesk-data:/data \
#     -e BREAKDESK_API_TOKEN=... -e BREAKDESK_HISTORY=/input/gl_ihub_history.csv \
#     -v "$PWD/assets/samples:/input:ro" breakdesk

# ---- build -------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# `.git` is not sent to the builder (.dockerignore): the commit and its date come from here, and
# `breakdesk --version` says "unknown" when they are not given.
ARG BREAKDESK_BUILD_COMMIT=unknown
ARG BREAKDESK_BUILD_DATE=unknown
ENV BREAKDESK_BUILD_COMMIT=${BREAKDESK_BUILD_COMMIT} \
    BREAKDESK_BUILD_DATE=${BREAKDESK_BUILD_DATE}
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin breakdesk \
    && install -m 0755 target/release/breakdesk /usr/local/bin/breakdesk

# ---- run ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates for HTTPS to Jira, webhooks and LLM services (rustls reads the system roots).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin breakdesk \
    && mkdir -p /data \
    && chown breakdesk:breakdesk /data \
    && chmod 0700 /data
COPY --from=build /usr/local/bin/breakdesk /usr/local/bin/breakdesk
USER 10001:10001
# The store, the models and the logs: keep them on a volume.
VOLUME ["/data"]
# `serve` listens on every interface of the container; an address other than loopback needs the
# bearer token (BREAKDESK_API_TOKEN, or [[service.users]]): without it the service refuses to
# start. BREAKDESK_HISTORY (a file mounted into the container) trains the first model.
ENV USER=breakdesk \
    HOME=/data \
    BREAKDESK_BIND=0.0.0.0:8080
EXPOSE 8080
# `breakdesk health` asks GET /health on BREAKDESK_BIND (0.0.0.0 asked as 127.0.0.1); the first
# start may train a model, hence the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["breakdesk", "health", "--timeout", "5"]
ENTRYPOINT ["breakdesk", "--data-dir", "/data"]
CMD ["serve"]
