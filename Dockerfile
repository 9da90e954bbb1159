# Build a static timgw binary, then run it as a non-root user in a minimal image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/timgw ./cmd/timgw \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/timgw /app/timgw
COPY conf/ /app/conf/
COPY scripts/ /app/scripts/
# The embedded storage writes to ./data (storage.dir): owned by the non-root user.
COPY --from=build --chown=nonroot:nonroot /out/data /app/data
VOLUME /app/data
USER nonroot:nonroot
EXPOSE 8888
# Distroless has no shell or curl: the binary asks its own GET /health (503 while shutting
# down). The address is the default listen; change it with the port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/app/timgw", "health", "127.0.0.1:8888"]
ENTRYPOINT ["/app/timgw"]
CMD ["-config", "/app/conf/timgw.yaml"]
