// Package dashboard mounts Asynqmon, the operators' view of the queues, at
// /monitoring/ behind HTTP Basic auth.
package dashboard
