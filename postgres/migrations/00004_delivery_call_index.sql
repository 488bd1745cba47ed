-- +goose NO TRANSACTION
-- Deliveries by call. call:analyze lists the call's pending call.analyzed
-- deliveries (CompleteAnalysis), and deleting a call cascades to its
-- deliveries; without this index both read every pending delivery (the
-- partial index of the sweeper) or the whole table, so the cost of an
-- analysis grew with the backlog: 745 buffers and 6 ms an analysis with
-- 2,000 calls in flight (make bench, pg_stat_statements). Built
-- CONCURRENTLY as in 00002, so not in a transaction.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_call ON webhook_deliveries (call_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_call;
