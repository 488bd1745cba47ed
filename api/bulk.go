package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
)

// Limits of POST /v1/calls/end-bulk.
const (
	maxBulkCallIDs    = 1000
	maxIdempotencyKey = 255
	// bulkEnqueueTimeout bounds queueing a job's task; past it the job is
	// still owed in Postgres and the reconciler queues it.
	bulkEnqueueTimeout = 2 * time.Second
)

// bulkFilterKeys are the criteria a bulk filter may name.
var bulkFilterKeys = []string{"all", "campaign_id", "ai_agent_id", "is_test", "call_ids", "started_before"}

// bulkRequest is a decoded POST /v1/calls/end-bulk body.
type bulkRequest struct {
	Filter       endcall.BulkFilter `json:"filter"`
	Reason       string             `json:"disconnect_reason"`
	FinalMessage string             `json:"final_message"`
}

// decodeBulkRequest validates a bulk end body. The filter must name at
// least one criterion, or all alone: ending every call is asked for by name.
// An absent, null or blank disconnect_reason becomes "Ended in bulk".
func decodeBulkRequest(body []byte) (bulkRequest, error) {
	req := bulkRequest{Reason: endcall.ReasonBulk}
	o, err := parseObject(body)
	if err != nil {
		return req, err
	}
	var fo object
	if ok, err := o.field("filter", "an object", &fo); err != nil {
		return req, err
	} else if !ok {
		return req, invalid(`filter is required: any of %s, or {"all":true} to end every active call.`, strings.Join(bulkFilterKeys[1:], ", "))
	}
	if req.Filter, err = decodeBulkFilter(fo); err != nil {
		return req, err
	}
	if reason, err := o.str("disconnect_reason"); err != nil {
		return req, err
	} else if reason != nil && strings.TrimSpace(*reason) != "" {
		if len([]rune(*reason)) > maxReasonLen {
			return req, invalid("disconnect_reason must be at most %d characters.", maxReasonLen)
		}
		req.Reason = strings.TrimSpace(*reason)
	}
	if msg, err := o.str("final_message"); err != nil {
		return req, err
	} else if msg != nil && strings.TrimSpace(*msg) != "" {
		if len([]rune(*msg)) > maxFinalMessageLen {
			return req, invalid("final_message must be at most %d characters.", maxFinalMessageLen)
		}
		req.FinalMessage = strings.TrimSpace(*msg)
	}
	return req, nil
}

// decodeBulkFilter reads the filter object. A criterion it does not know is
// refused: ignoring a misspelt one would end more calls than meant.
func decodeBulkFilter(fo object) (endcall.BulkFilter, error) {
	var f endcall.BulkFilter
	var unknown []string
	for name := range fo {
		if !isBulkFilterKey(name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return f, invalid("Unknown filter criteria %s; accepted: %s.", strings.Join(unknown, ", "), strings.Join(bulkFilterKeys, ", "))
	}
	var all bool
	if _, err := fo.field("all", "a boolean", &all); err != nil {
		return f, err
	}
	for _, c := range []struct {
		name string
		dst  **string
	}{{"campaign_id", &f.CampaignID}, {"ai_agent_id", &f.AIAgentID}} {
		v, err := fo.str(c.name)
		if err != nil {
			return f, err
		} else if v != nil && (*v == "" || len([]rune(*v)) > maxIDLen) {
			return f, invalid("filter.%s must be 1 to %d characters.", c.name, maxIDLen)
		}
		*c.dst = v
	}
	var isTest bool
	if ok, err := fo.field("is_test", "a boolean", &isTest); err != nil {
		return f, err
	} else if ok {
		f.IsTest = &isTest
	}
	var ids []string
	if ok, err := fo.field("call_ids", "an array of call IDs", &ids); err != nil {
		return f, err
	} else if ok {
		if len(ids) == 0 || len(ids) > maxBulkCallIDs {
			return f, invalid("filter.call_ids must list 1 to %d call IDs.", maxBulkCallIDs)
		}
		f.CallIDs = make([]string, len(ids))
		for i, id := range ids {
			var ok bool
			if f.CallIDs[i], ok = parseUUID(id); !ok {
				return f, invalid("filter.call_ids[%d] must be a UUID.", i)
			}
		}
	}
	if v, err := fo.str("started_before"); err != nil {
		return f, err
	} else if v != nil {
		t, err := time.Parse(time.RFC3339, *v)
		if err != nil {
			return f, invalid("filter.started_before must be an RFC 3339 timestamp, such as 2026-01-02T15:04:05Z.")
		}
		t = t.UTC()
		f.StartedBefore = &t
	}
	named := f.CampaignID != nil || f.AIAgentID != nil || f.IsTest != nil || f.CallIDs != nil || f.StartedBefore != nil
	switch {
	case all && named:
		return f, invalid(`filter.all must be alone: {"all":true} ends every active call, and other criteria would narrow it.`)
	case !all && !named:
		return f, invalid(`filter is empty: name any of %s, or {"all":true} to end every active call.`, strings.Join(bulkFilterKeys[1:], ", "))
	}
	f.All = all
	return f, nil
}

func isBulkFilterKey(name string) bool {
	for _, k := range bulkFilterKeys {
		if k == name {
			return true
		}
	}
	return false
}

// idempotencyKey reads the Idempotency-Key header: "" when absent.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", nil
	}
	if len(k) > maxIdempotencyKey {
		return "", invalid("Idempotency-Key must be at most %d characters.", maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", invalid("Idempotency-Key must be visible ASCII characters.")
		}
	}
	return k, nil
}

func (s *Server) handleEndBulk(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := decodeBulkRequest(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The request as decoded, so that a repeat under the same key matches
	// whatever its formatting.
	canonical, err := json.Marshal(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hash := sha256.Sum256(canonical)
	ws := workspaceFrom(r.Context())
	job, created, err := s.store.CreateBulkEnd(r.Context(), endcall.BulkEndRequest{WorkspaceID: ws, Filter: req.Filter,
		Reason: req.Reason, FinalMessage: req.FinalMessage, IdempotencyKey: key, RequestHash: hash[:]})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !created {
		s.success(w, http.StatusAccepted, "Bulk end already accepted", job)
		return
	}
	if job.Status == endcall.BulkRunning {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), bulkEnqueueTimeout)
		defer cancel()
		if err := s.queue.Enqueue(ctx, []endcall.Work{{Kind: endcall.WorkEndBulk, JobID: job.ID, WorkspaceID: ws}}); err != nil {
			s.log.WarnContext(r.Context(), "queueing a bulk end failed; the reconciler queues it", "bulk_end_id", job.ID, "error", err)
		}
	}
	s.success(w, http.StatusAccepted, "Bulk end accepted", job)
}

func (s *Server) handleGetBulkEnd(w http.ResponseWriter, r *http.Request) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "bulk end not found"))
		return
	}
	job, err := s.store.BulkEnd(r.Context(), workspaceFrom(r.Context()), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Bulk end retrieved", job)
}
