package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall/config"
	"github.com/endcall/endcall/postgres"
)

// openDB loads the configuration the database commands need and connects.
func openDB(ctx context.Context, getenv func(string) string) (*pgxpool.Pool, error) {
	cfg, err := config.LoadDB(getenv)
	if err != nil {
		return nil, err
	}
	return postgres.Open(ctx, cfg.DatabaseURL)
}

func runMigrate(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database is migrated")
	return nil
}

func runAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, "usage: endcall apikey create --workspace NAME")
			return nil
		}
		return errors.New("usage: endcall apikey create --workspace NAME")
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	fs.SetOutput(stdout)
	workspace := fs.String("workspace", "", "workspace name (created if it does not exist)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	name := strings.TrimSpace(*workspace)
	if name == "" || len(name) > 200 {
		return errors.New("apikey create: --workspace NAME is required (at most 200 characters)")
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckMigrated(ctx, pool); err != nil {
		return err
	}
	id, key, err := postgres.NewStore(pool, nil).CreateAPIKey(ctx, name)
	if err != nil {
		return fmt.Errorf("apikey create: %w", err)
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"workspace_id": id, "api_key": key})
}
