// Command endcall ends phone calls and runs everything that must follow.
// Run `endcall --help` for the subcommands; configuration is read from the
// environment (`endcall SUBCOMMAND --help` lists the variables).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version and commit are stamped at build time:
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha>".
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "endcall:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only supplies the process's environment so
// that tests can call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "-version", "--version", "version":
		fmt.Fprintf(stdout, "endcall %s (commit %s)\n", version, buildCommit())
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

// buildCommit is the stamped commit, else the one the Go toolchain recorded
// when it built from a git checkout, else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if modified == "true" {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}
