package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/config"
)

const usage = `Usage: endcall SUBCOMMAND [FLAGS]

endcall ends phone calls and runs the post-call work.

Subcommands:
  serve                            HTTP API, dashboard and metrics
  worker                           task worker, scheduler and reconciler
  all                              serve and worker in one process
  migrate                          apply database migrations and exit
  apikey create --workspace NAME   create a workspace (if needed) and an API key
  apikey list --workspace NAME     list a workspace's API keys
  apikey revoke ID                 revoke an API key
  --version                        print the version and the commit it was built from

Configuration is read from environment variables; ` + "`endcall SUBCOMMAND --help`" + ` lists the
ones each subcommand reads.
`

// help is one subcommand's help, printed in one style by helpText.
type help struct {
	usage string
	about string
	flags string
	env   string
}

// dbEnv is what migrate and apikey read.
const dbEnv = `  DATABASE_URL   Postgres URL (required)
  Every other endcall variable that is set is validated too; see ` + "`endcall serve --help`" + `.
`

var subcommandHelp = map[string]help{
	"serve": {usage: "endcall serve",
		about: "Runs the HTTP API (/v1), /healthz, /readyz, /metrics and the dashboard (/monitoring/) on HTTP_ADDR.\nRefuses an unmigrated database.",
		env:   processEnv()},
	"worker": {usage: "endcall worker",
		about: "Runs the asynq worker (queues critical, default, webhooks), the overdue-call scheduler and\nthe reconciler; /metrics and /healthz on METRICS_ADDR when set.\nRefuses an unmigrated database.",
		env:   processEnv()},
	"all": {usage: "endcall all", about: "Runs serve and worker in one process.", env: processEnv()},
	"migrate": {usage: "endcall migrate",
		about: "Applies the embedded database migrations to DATABASE_URL (idempotent) and exits.", env: dbEnv},
	"apikey create": {usage: "endcall apikey create --workspace NAME",
		about: "Creates the workspace if it does not exist and a new API key for it, and prints one JSON\nobject: {\"workspace_id\":...,\"api_key\":...}. The key is shown only here.",
		flags: "  --workspace NAME   the workspace's name (at most 200 characters)\n", env: dbEnv},
	"apikey list": {usage: "endcall apikey list --workspace NAME",
		about: "Prints the workspace's API keys, oldest first, one JSON object a line: id, prefix (the\nkey's first 8 characters), created_at, last_used_at (to the minute) and revoked_at.",
		flags: "  --workspace NAME   the workspace's name\n", env: dbEnv},
	"apikey revoke": {usage: "endcall apikey revoke ID",
		about: fmt.Sprintf("Revokes the API key ID (from `endcall apikey list`) and prints it as `apikey list` does.\nEvery server refuses it within %s.", api.KeyCacheTTL),
		env:   dbEnv},
}

// helpText renders a subcommand's help.
func helpText(name string) string {
	h := subcommandHelp[name]
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", h.usage, h.about)
	if h.flags != "" {
		fmt.Fprintf(&b, "\nFlags:\n%s", h.flags)
	}
	fmt.Fprintf(&b, "\nEnvironment:\n%s", h.env)
	return b.String()
}

// processEnv lists every variable serve, worker and all read: the ones the
// configuration logs at start-up.
func processEnv() string {
	var names []string
	for _, a := range config.Default().LogValue().Group() {
		names = append(names, a.Key)
	}
	var b strings.Builder
	b.WriteString("  DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_ADDRS) are required; the others are optional:\n")
	line := " "
	for _, n := range names {
		if len(line)+len(n)+1 > 100 {
			b.WriteString(line + "\n")
			line = " "
		}
		line += " " + n
	}
	b.WriteString(line + "\n")
	return b.String()
}

// helpRequested prints a subcommand's help when asked for it.
func helpRequested(args []string, stdout io.Writer, name string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, helpText(name))
			return true
		}
	}
	return false
}
