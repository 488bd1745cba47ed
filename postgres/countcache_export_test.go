package postgres

import "time"

// SetNow sets the store's clock (the count cache of QueryCalls reads it).
func (s *Store) SetNow(now func() time.Time) { s.now = now }

// SetCountCacheThreshold sets the total above which QueryCalls keeps a
// count, so that tests need not insert 10,000 calls each.
func (s *Store) SetCountCacheThreshold(n int) { s.counts.threshold = n }
