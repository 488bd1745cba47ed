// Command endcall ends phone calls and runs everything that must follow.
// Run `endcall --help` for the subcommands; configuration is read from the
// environment (see the README).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "endcall:", err)
		os.Exit(1)
	}
}

const usage = `endcall ends phone calls and runs the post-call work.

Usage:
  endcall serve                          HTTP API, dashboard and metrics
  endcall worker                         task worker, scheduler and recovery sweeper
  endcall all                            serve and worker in one process
  endcall migrate                        apply database migrations and exit
  endcall apikey create --workspace NAME create a workspace (if needed) and an API key

Configuration is read from environment variables (DATABASE_URL, REDIS_URL, ...);
see README.md. Each subcommand accepts --help.
`

// run is the whole program; main only supplies the process's environment so
// that tests can call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing subcommand")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "serve", "worker", "all":
		if helpRequested(args[1:], stdout, args[0]) {
			return nil
		}
		return runProcess(ctx, args[0], getenv, stderr)
	case "migrate":
		if helpRequested(args[1:], stdout, "migrate") {
			return nil
		}
		return runMigrate(ctx, getenv, stdout, stderr)
	case "apikey":
		return runAPIKey(ctx, args[1:], getenv, stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

var subcommandHelp = map[string]string{
	"serve":   "endcall serve: runs the HTTP API (/v1), /healthz, /readyz, /metrics and the dashboard on HTTP_ADDR.\nRequires DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_ADDRS); refuses an unmigrated database.\n",
	"worker":  "endcall worker: runs the asynq worker (queues critical, default, webhooks), the overdue-call scheduler and the recovery sweeper.\nRequires DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_ADDRS); refuses an unmigrated database.\n",
	"all":     "endcall all: serve and worker in one process.\n",
	"migrate": "endcall migrate: applies the embedded database migrations to DATABASE_URL (idempotent) and exits.\n",
}

// helpRequested prints a subcommand's help when asked for it.
func helpRequested(args []string, stdout io.Writer, name string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, subcommandHelp[name])
			return true
		}
	}
	return false
}
