package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	docMetricRe = regexp.MustCompile(`\b(?:endcall|asynq)_[a-z0-9_]+\b`)
	docLabelRe  = regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
	docGroupRe  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// checkDocMetrics reads the PromQL of every expr: line in the code blocks of
// docs/operations.md, crudely, and fails for each metric name it uses that
// exposition lacks, and each label name that none of the expression's
// metrics carries there.
func checkDocMetrics(t *testing.T, exposition string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	series := strings.Split(exposition, "\n")
	found := map[string]bool{}
	blocks := strings.Split(string(doc), "```")
	for i := 1; i < len(blocks); i += 2 {
		for line := range strings.Lines(blocks[i]) {
			_, expr, ok := strings.Cut(line, "expr:")
			if !ok {
				continue
			}
			metrics := docMetricRe.FindAllString(expr, -1)
			var labels []string
			for _, m := range docLabelRe.FindAllStringSubmatch(expr, -1) {
				labels = append(labels, m[1])
			}
			for _, m := range docGroupRe.FindAllStringSubmatch(expr, -1) {
				for l := range strings.SplitSeq(m[1], ",") {
					labels = append(labels, strings.TrimSpace(l))
				}
			}
			lines := func(metric string) []string {
				var out []string
				for _, s := range series {
					if strings.HasPrefix(s, metric+"{") || strings.HasPrefix(s, metric+" ") {
						out = append(out, s)
					}
				}
				return out
			}
			for _, m := range metrics {
				found[m] = true
				if len(lines(m)) == 0 {
					t.Errorf("docs/operations.md uses %s, which /metrics does not export (expr %s)", m, strings.TrimSpace(expr))
				}
			}
			for _, l := range labels {
				if !slices.ContainsFunc(metrics, func(m string) bool {
					return slices.ContainsFunc(lines(m), func(s string) bool { return strings.Contains(s, "{"+l+`="`) || strings.Contains(s, ","+l+`="`) })
				}) {
					t.Errorf("docs/operations.md uses label %s, which none of %v carries in /metrics (expr %s)", l, metrics, strings.TrimSpace(expr))
				}
			}
		}
	}
	if len(found) < 10 {
		t.Errorf("docs/operations.md's rules use %d metrics; the parser found %v", len(found), found)
	}
}
