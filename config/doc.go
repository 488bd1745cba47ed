// Package config reads, validates and defaults endcall's configuration from
// environment variables, and builds the process logger.
//
// Every subcommand calls one loader with os.Getenv and stops with the
// loader's error, which is always one line naming the variable and the
// problem:
//
//	cfg, err := config.Load(os.Getenv)   // serve, worker, all
//	cfg, err := config.LoadDB(os.Getenv) // migrate, apikey create
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(2)
//	}
//
// Load requires DATABASE_URL and Redis (REDIS_URL, or REDIS_CLUSTER_ADDRS).
// LoadDB requires only DATABASE_URL; both validate every variable that is
// set, so a typo is reported by every subcommand alike. A variable that is
// empty or only whitespace counts as unset and takes its default.
//
// A Config logs safely: its LogValue masks passwords and secrets.
package config
