package webhook

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	got, err := ParseSchedule(DefaultSchedule)
	if err != nil {
		t.Fatalf("ParseSchedule(%q): %v", DefaultSchedule, err)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got, err = ParseSchedule(" 1s , 1m30s")
	if want := []time.Duration{time.Second, 90 * time.Second}; err != nil || !slices.Equal(got, want) {
		t.Errorf("with spaces: got %v, %v; want %v, nil", got, err, want)
	}

	bad := []struct{ in, wantText string }{
		{"", "empty"},
		{"  ", "empty"},
		{"5s,,5m", "item 2 is empty"},
		{"5s,", "item 2 is empty"},
		{"5s,soon", `item 2 ("soon") is not a duration`},
		{"5", `item 1 ("5") is not a duration`},
		{"5s,0s", "item 2 (\"0s\") must be greater than zero"},
		{"-1m", "must be greater than zero"},
	}
	for _, tt := range bad {
		_, err := ParseSchedule(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("ParseSchedule(%q): got %v, want an error containing %q", tt.in, err, tt.wantText)
		}
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	d := 10 * time.Minute
	tests := []struct {
		r    float64
		want time.Duration
	}{
		{0, 8 * time.Minute},
		{0.5, 10 * time.Minute},
		{0.25, 9 * time.Minute},
		{-1, 8 * time.Minute},
		{1, 12 * time.Minute},
		{7, 12 * time.Minute},
	}
	for _, tt := range tests {
		if got := Jitter(d, tt.r); got != tt.want {
			t.Errorf("Jitter(%v, %v): got %v, want %v", d, tt.r, got, tt.want)
		}
	}
	if got := Jitter(d, 0.999999); got < 8*time.Minute || got >= 12*time.Minute {
		t.Errorf("Jitter(%v, 0.999999): got %v, want in [8m, 12m)", d, got)
	}
}
