package postgres

// OverdueSQL exposes the overdue scan to the external tests, which EXPLAIN it.
const OverdueSQL = overdueSQL
