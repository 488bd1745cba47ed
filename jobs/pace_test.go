package jobs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/internal/testenv"
)

// TestPacerGivesEachDeliveryItsOwnTurn: deliveries to one endpoint get turns
// 1/rate apart; asking again keeps a delivery's turn instead of taking a new
// one (so a waiting backlog does not push itself back), and a turn once used
// is gone.
func TestPacerGivesEachDeliveryItsOwnTurn(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	p := &Pacer{Redis: rdb}
	ctx := context.Background()
	const rate = 2 // turns 500 ms apart
	wait := func(delivery string) time.Duration {
		t.Helper()
		d, err := p.Wait(ctx, "ep", delivery, rate)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := wait("a"); d != 0 {
		t.Fatalf("first delivery waits %v, want 0", d)
	}
	b, c := wait("b"), wait("c")
	if b < 400*time.Millisecond || b > 520*time.Millisecond || c < 900*time.Millisecond || c > 1040*time.Millisecond {
		t.Fatalf("b waits %v, c %v; want about 500 ms and 1 s", b, c)
	}
	// Asking again keeps the same turn.
	if again := wait("c"); again > c || again < c-100*time.Millisecond {
		t.Fatalf("c asked again waits %v, want its own turn (%v)", again, c)
	}
	// Another endpoint has turns of its own.
	if d, err := p.Wait(ctx, "other", "x", rate); err != nil || d != 0 {
		t.Fatalf("another endpoint's first delivery waits %v (%v)", d, err)
	}
	time.Sleep(b)
	if d := wait("b"); d != 0 {
		t.Fatalf("b at its turn waits %v, want 0", d)
	}
	// Its turn used, b asking again (a retry) queues behind c.
	if d := wait("b"); d < c-b {
		t.Fatalf("b's retry waits %v, want behind c", d)
	}
}

// TestPacerSpacesLateTurns: deliveries that come to their turns late, all at
// once (their worker was busy), still go one interval apart.
func TestPacerSpacesLateTurns(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	p := &Pacer{Redis: rdb}
	ctx := context.Background()
	const rate = 10
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		if _, err := p.Wait(ctx, "late", id, rate); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond) // every turn is now past
	var granted []time.Time
	for len(granted) < len(ids) {
		for _, id := range ids {
			d, err := p.Wait(ctx, "late", id, rate)
			if err != nil {
				t.Fatal(err)
			}
			if d == 0 {
				granted = append(granted, time.Now())
				ids = slices.DeleteFunc(ids, func(s string) bool { return s == id })
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 1; i < len(granted); i++ {
		if gap := granted[i].Sub(granted[i-1]); gap < 95*time.Millisecond {
			t.Fatalf("grant %d came %v after the one before; want at least the 100 ms interval", i, gap)
		}
	}
}
