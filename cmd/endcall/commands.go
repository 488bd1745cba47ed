package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
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
	const apikeyUsage = "usage: endcall apikey create|list --workspace NAME, or endcall apikey revoke ID"
	if len(args) == 0 {
		return errors.New(apikeyUsage)
	}
	name := "apikey " + args[0]
	if _, ok := subcommandHelp[name]; !ok {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprintln(stdout, apikeyUsage+"\n\nRun endcall apikey create|list|revoke --help for each.")
			return nil
		}
		return errors.New(apikeyUsage)
	}
	if helpRequested(args[1:], stdout, name) {
		return nil
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var workspace *string
	if args[0] != "revoke" {
		workspace = fs.String("workspace", "", "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%s: %v (see endcall %s --help)", name, err, name)
	}
	var id string
	if args[0] == "revoke" {
		if fs.NArg() != 1 || uuid.Validate(fs.Arg(0)) != nil {
			return errors.New("apikey revoke: give the ID of one key (a UUID, from `endcall apikey list`)")
		}
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	ws := ""
	if workspace != nil {
		ws = strings.TrimSpace(*workspace)
		if ws == "" || len(ws) > 200 {
			return fmt.Errorf("%s: --workspace NAME is required (at most 200 characters)", name)
		}
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckMigrated(ctx, pool); err != nil {
		return err
	}
	store := postgres.NewStore(pool, nil)
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "create":
		id, key, err := store.CreateAPIKey(ctx, ws)
		if err != nil {
			return fmt.Errorf("apikey create: %w", err)
		}
		return enc.Encode(map[string]string{"workspace_id": id, "api_key": key})
	case "list":
		keys, err := store.ListAPIKeys(ctx, ws)
		if err != nil {
			return cliError("apikey list", err)
		}
		for _, k := range keys {
			if err := enc.Encode(k); err != nil {
				return err
			}
		}
		return nil
	default:
		k, err := store.RevokeAPIKey(ctx, id)
		if err != nil {
			return cliError("apikey revoke", err)
		}
		return enc.Encode(k)
	}
}

// cliError says what a command could not find in its own words, and any
// other failure with its cause.
func cliError(name string, err error) error {
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("%s: %s", name, endcall.ErrorMessage(err))
	}
	return fmt.Errorf("%s: %w", name, err)
}
