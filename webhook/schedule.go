package webhook

import (
	"fmt"
	"strings"
	"time"
)

// DefaultSchedule is the default WEBHOOK_RETRY_SCHEDULE: the delays between
// attempts, so eight attempts in all over about 28 hours.
const DefaultSchedule = "5s,5m,30m,2h,5h,10h,10h"

// ParseSchedule parses a WEBHOOK_RETRY_SCHEDULE value: a comma-separated
// list of positive Go durations, each the delay before the next attempt.
func ParseSchedule(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("retry schedule is empty; want comma-separated durations such as %q", DefaultSchedule)
	}
	parts := strings.Split(s, ",")
	out := make([]time.Duration, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("retry schedule %q: item %d is empty", s, i+1)
		}
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("retry schedule %q: item %d (%q) is not a duration such as 30s, 5m or 2h", s, i+1, p)
		}
		if d <= 0 {
			return nil, fmt.Errorf("retry schedule %q: item %d (%q) must be greater than zero", s, i+1, p)
		}
		out = append(out, d)
	}
	return out, nil
}

// Jitter spreads retries of many deliveries that failed together: it
// returns d × (0.8 + 0.4r), i.e. d ± 20%, for r in [0, 1) (r is clamped to
// that range). Callers pass rand.Float64() in production and fixed values
// in tests.
func Jitter(d time.Duration, r float64) time.Duration {
	switch {
	case r < 0 || r != r:
		r = 0
	case r >= 1:
		r = 1
	}
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}
