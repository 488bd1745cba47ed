# Build one static binary, then ship it alone.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# endcall --version: docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD)
ARG VERSION=dev
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/endcall ./cmd/endcall

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/endcall /endcall
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/endcall"]
CMD ["all"]
