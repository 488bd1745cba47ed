// Package jobs holds the asynq task types of endcall, one file per task
// type: its declaration (a TaskType: type name, queue, deterministic task ID,
// options, payload, retry delay, handler, and the store query of what
// Postgres owes of it), its payload and its handler. Registry lists them;
// the Enqueuer, the worker and the reconciler read it. Task type strings are
// permanent once deployed.
package jobs
