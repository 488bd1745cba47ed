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

// The rescuer's scripts, to run them on a task that changed after a pass
// listed it.
var RescueScript, UnarchiveScript = rescueScript, unarchiveScript

// ArchiveFrom is where the next pass reads queue q's archive from, were it
// to start at start.
func (r *Rescuer) ArchiveFrom(q string, start time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.archiveFrom(q, start)
}
