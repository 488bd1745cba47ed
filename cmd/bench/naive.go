package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// The floors of (a) write with SQL of their own, the plainest a first
// version of the end route would use: one UPDATE of the call, one INSERT of
// its call.ended deliveries, in one transaction. The service's statements
// are not copied: the floor is what endcall is measured against, not a
// replica of it.
const (
	naiveUpdateSQL = `
UPDATE calls SET call_status = 'completed', ended_at = now(), updated_at = now(), disconnect_reason = $2,
	call_duration = COALESCE(floor(extract(epoch FROM now() - started_at))::int, 0),
	provider_hangup_status = 'succeeded', room_status = 'pending', analysis_status = 'pending'
WHERE id = $1 AND workspace_id = $3 AND ended_at IS NULL
RETURNING coalesce(call_sid, '')`
	naiveDeliveriesSQL = `
INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, body)
SELECT 'msg_' || md5(random()::text || e.id::text), e.workspace_id, e.id, $1, 'call.ended', $2
FROM webhook_endpoints e
WHERE e.workspace_id = $3 AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events)
RETURNING id`
)

// naiveFloor is the work of ending one call with nothing but what it needs:
// the transaction, the Twilio hangup (naive server only) and the asynq
// enqueues of the post-call work, with the tasks' own IDs so that the
// worker does the same work behind the floors as behind endcall.
type naiveFloor struct {
	pool        *pgxpool.Pool
	client      *asynq.Client
	tasks       *jobs.Enqueuer
	workspaceID string
	twilio      *http.Client
	twilioURL   string
	account     string
	token       string
}

// errAlreadyEnded is a call the floor found ended.
var errAlreadyEnded = errors.New("call already ended")

// record ends the call in one transaction and returns its SID and the IDs
// of its call.ended deliveries.
func (f *naiveFloor) record(ctx context.Context, id string) (sid string, deliveries []string, err error) {
	body, _ := json.Marshal(map[string]any{"type": "call.ended", "timestamp": time.Now().UTC(), "data": map[string]string{"id": id}})
	err = pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, naiveUpdateSQL, id, endcall.ReasonAPIDefault, f.workspaceID).Scan(&sid); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return errAlreadyEnded
			}
			return err
		}
		rows, _ := tx.Query(ctx, naiveDeliveriesSQL, id, body, f.workspaceID)
		deliveries, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return sid, deliveries, err
}

// enqueue queues room deletion, analysis and the deliveries.
func (f *naiveFloor) enqueue(ctx context.Context, id string, deliveries []string) error {
	work := []endcall.Work{{Kind: endcall.WorkRoomDelete, CallID: id}, {Kind: endcall.WorkAnalyze, CallID: id}}
	for _, d := range deliveries {
		work = append(work, endcall.Work{Kind: endcall.WorkDeliver, CallID: id, DeliveryID: d})
	}
	for _, w := range work {
		task, err := f.tasks.Task(w)
		if err != nil {
			return err
		}
		if _, err := f.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err
		}
	}
	return nil
}

// hangup asks Twilio to complete the call, through plain net/http.
func (f *naiveFloor) hangup(ctx context.Context, sid string) error {
	form := url.Values{"Status": {"completed"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		f.twilioURL+"/2010-04-01/Accounts/"+f.account+"/Calls/"+sid+".json", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.SetBasicAuth(f.account, f.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := f.twilio.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("twilio: HTTP %d: %.200s", res.StatusCode, raw)
	}
	return nil
}

// raw is the raw I/O floor: the transaction and the enqueues, called
// directly, with no HTTP on either side.
func (f *naiveFloor) raw(ctx context.Context, id string) error {
	_, deliveries, err := f.record(ctx, id)
	if err != nil {
		return err
	}
	return f.enqueue(ctx, id, deliveries)
}

// ServeHTTP is the naive server: decode, record, hang up, enqueue, answer.
// No auth, logging, metrics or batching.
func (f *naiveFloor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CallID string `json:"call_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.CallID == "" {
		http.Error(w, `{"status":"error","message":"bad request"}`, http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	sid, deliveries, err := f.record(ctx, req.CallID)
	if errors.Is(err, errAlreadyEnded) {
		writeNaive(w, "Call already ended", req.CallID)
		return
	}
	if err == nil && sid != "" {
		err = f.hangup(ctx, sid)
	}
	if err == nil {
		err = f.enqueue(ctx, req.CallID, deliveries)
	}
	if err != nil {
		http.Error(w, `{"status":"error","message":"`+err.Error()+`"}`, http.StatusInternalServerError)
		return
	}
	writeNaive(w, "Call ended", req.CallID)
}

func writeNaive(w http.ResponseWriter, msg, id string) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"status": "success", "message": msg,
		"data": map[string]any{"id": id, "call_status": endcall.StatusCompleted}})
}

// startNaive serves the naive server on 127.0.0.1 at /v1/calls/end, so
// that the same client drives it as endcall.
func startNaive(f *naiveFloor) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/calls/end", f)
	return httptest.NewServer(mux)
}

func newTwilioClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 256
	return &http.Client{Transport: t, Timeout: 5 * time.Second}
}
