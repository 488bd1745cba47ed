package worker

import (
	"context"
	"time"
)

// RescueBefore is one pass of the rescuer with the given cutoff, so that a
// test need not wait for a real lease to expire.
func (r *Rescuer) RescueBefore(ctx context.Context, cutoff time.Time) (int, error) {
	return r.rescue(ctx, cutoff)
}
