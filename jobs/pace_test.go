package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/internal/testenv"
)

func newPacer(t *testing.T) *Pacer {
	t.Helper()
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return &Pacer{Redis: rdb}
}

// TestPacerGivesEachDeliveryItsOwnSecond: deliveries to one endpoint reserve
// seconds, rate to a second; asking again keeps a delivery's second instead
// of taking a new one (so a waiting backlog does not push itself back), and
// another endpoint has seconds of its own.
func TestPacerGivesEachDeliveryItsOwnSecond(t *testing.T) {
	t.Parallel()
	p := newPacer(t)
	ctx := context.Background()
	// Start early in a second, so that the first two go in it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	const rate = 2
	wait := func(delivery string) time.Duration {
		t.Helper()
		d, err := p.Wait(ctx, "ep", delivery, rate)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := wait("a"), wait("b"); a != 0 || b != 0 {
		t.Fatalf("the first %d deliveries wait %v and %v, want 0", rate, a, b)
	}
	c, d, e := wait("c"), wait("d"), wait("e")
	if c <= 0 || c > time.Second || d > c || d < c-50*time.Millisecond {
		t.Fatalf("c and d wait %v and %v, want both until the next second", c, d)
	}
	if e < c+900*time.Millisecond || e > c+time.Second+50*time.Millisecond {
		t.Fatalf("e waits %v, want a second after c (%v)", e, c)
	}
	if again := wait("e"); again > e || again < e-100*time.Millisecond {
		t.Fatalf("e asked again waits %v, want its own second (%v)", again, e)
	}
	if d, err := p.Wait(ctx, "other", "x", rate); err != nil || d != 0 {
		t.Fatalf("another endpoint's first delivery waits %v (%v)", d, err)
	}
	// At their second, c and d wait only for a and b to leave the window
	// (a second and its slack), and then go.
	time.Sleep(c)
	for _, id := range []string{"c", "d"} {
		w := wait(id)
		if w > paceWindow-time.Second+10*time.Millisecond {
			t.Fatalf("at its second %s waits %v, want at most the window's slack", id, w)
		}
		if w > 0 {
			time.Sleep(w)
			if w := wait(id); w != 0 {
				t.Fatalf("%s waits %v again", id, w)
			}
		}
	}
}

// TestPacerNeverGrantsMoreThanRateInAWindow: however late deliveries come to
// their seconds, and however many ask at once, no window of paceWindow holds
// more than rate grants.
func TestPacerNeverGrantsMoreThanRateInAWindow(t *testing.T) {
	t.Parallel()
	p := newPacer(t)
	ctx := context.Background()
	const rate = 5
	var ids []string
	for i := range 3 * rate {
		ids = append(ids, fmt.Sprint("d", i))
		if _, err := p.Wait(ctx, "late", ids[i], rate); err != nil {
			t.Fatal(err)
		}
	}
	// Every delivery comes late to its second (a busy worker), all at once,
	// and asks until it is granted.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(2*time.Second + 500*time.Millisecond)))
	var granted []time.Time
	deadline := time.Now().Add(10 * time.Second)
	for len(ids) > 0 && time.Now().Before(deadline) {
		var left []string
		for _, id := range ids {
			d, err := p.Wait(ctx, "late", id, rate)
			if err != nil {
				t.Fatal(err)
			}
			if d == 0 {
				granted = append(granted, time.Now())
			} else {
				left = append(left, id)
			}
		}
		ids = left
		time.Sleep(10 * time.Millisecond)
	}
	if len(ids) > 0 {
		t.Fatalf("%d deliveries never granted", len(ids))
	}
	for i := rate; i < len(granted); i++ {
		if span := granted[i].Sub(granted[i-rate]); span < time.Second {
			t.Fatalf("grants %d..%d came within %v: more than %d in a second", i-rate, i, span, rate)
		}
	}
}

// TestPacerLetsALateDeliveryGoWhenTheWindowHasRoom: a delivery that comes
// seconds late to its reserved second (its worker was busy) goes at once
// while the window has room, even with later seconds reserved by others,
// rather than taking a new second at the back; one that finds the window
// full takes the next free second.
func TestPacerLetsALateDeliveryGoWhenTheWindowHasRoom(t *testing.T) {
	t.Parallel()
	p := newPacer(t)
	ctx := context.Background()
	const rate = 2
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	start := time.Now()
	// a and b go at once; c..n reserve the next six seconds.
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"}
	for _, id := range ids {
		if _, err := p.Wait(ctx, "busy", id, rate); err != nil {
			t.Fatal(err)
		}
	}
	// Four seconds on, c..f are two and three seconds late, and the window
	// is empty.
	time.Sleep(time.Until(start.Add(4*time.Second + 100*time.Millisecond)))
	for _, id := range []string{"c", "d"} {
		if d, err := p.Wait(ctx, "busy", id, rate); err != nil || d != 0 {
			t.Fatalf("late delivery %s waits %v (%v) with the window empty, want 0", id, d, err)
		}
	}
	// The window is full now: e takes the second after n's.
	d, err := p.Wait(ctx, "busy", "e", rate)
	if err != nil {
		t.Fatal(err)
	}
	if d < 2*time.Second || d > 3*time.Second {
		t.Fatalf("late delivery e waits %v with the window full, want the next free second, after those reserved", d)
	}
}
