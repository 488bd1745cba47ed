# Build one static binary, then ship it alone.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/endcall ./cmd/endcall

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/endcall /endcall
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/endcall"]
CMD ["all"]
