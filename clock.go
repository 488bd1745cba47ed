package endcall

import "time"

// Clock tells the time. Services take one so that tests can fix the time;
// nil is the system clock.
type Clock func() time.Time

// Now returns c's time, or the system's when c is nil.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}
