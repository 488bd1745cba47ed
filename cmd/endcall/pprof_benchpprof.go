//go:build benchpprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// Only `cmd/bench -pprof` builds this file (the benchpprof tag): it serves
// net/http/pprof on ENDCALL_PPROF_ADDR, a listener of its own, so that the
// benchmark can profile the process it measures. Production builds never
// contain it, and the API's router never serves it.
func init() {
	if addr := os.Getenv("ENDCALL_PPROF_ADDR"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
