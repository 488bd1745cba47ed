// Package postgres is the store of endcall: workspaces, API keys, phone
// numbers, calls, webhook endpoints and deliveries, on pgx v5, with the
// schema as embedded goose migrations. It returns only *endcall.Error codes
// to callers; driver errors are wrapped as internal or unavailable.
package postgres
