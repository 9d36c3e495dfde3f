# karat serve in a container: a static binary on a distroless base, run as a
# non-root user. The e2e tests (cmd/karat) run the `go build` line below
# verbatim, so the binary they test is built exactly as this image's is.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/karat ./cmd/karat

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/karat /karat
USER nonroot:nonroot
ENV KARAT_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/karat", "healthcheck"]
ENTRYPOINT ["/karat"]
CMD ["serve"]
