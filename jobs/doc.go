// Package jobs holds the asynq task types of endcall: one file per task with
// its type constant, payload, constructor and handler, and the Enqueuer that
// turns owed work into tasks with deterministic IDs. Task type strings are
// permanent once deployed.
package jobs
