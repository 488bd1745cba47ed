// Command devpeer stands in for the outside world during `make dev`: the
// repository's LiveKit RoomService fake (livekit/livekittest) and two of its
// webhook receiver fakes (webhook/webhooktest), which verify each request as
// LiveKit and a Standard Webhooks receiver do, on one port. It prints what
// they get. It is a development aid, not part of the service.
//
//	WEBHOOK_SECRET=whsec_... WEBHOOK_FAILING_SECRET=whsec_... \
//	LIVEKIT_API_KEY=k LIVEKIT_API_SECRET=s devpeer -addr 127.0.0.1:9000
//
// POST /webhooks answers 204; POST /failing answers every delivery 500, so
// that make dev shows retries, the delivery log's failed attempts and the
// dashboard's archive.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/endcall/endcall/livekit/livekittest"
	"github.com/endcall/endcall/webhook/webhooktest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	log.SetFlags(0)

	rooms := livekittest.NewHandler(os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET"))
	// Rooms live in LiveKit, not in endcall: any room is there until deleted.
	rooms.AllowUnknownRooms()
	rooms.CountOnly()
	rooms.OnDelete(printRoom)

	hooks := receiver("WEBHOOK_SECRET", "/webhooks")
	failing := receiver("WEBHOOK_FAILING_SECRET", "/failing")
	failing.Script(webhooktest.Reply{Status: http.StatusInternalServerError,
		Body: `{"error":"devpeer's /failing endpoint always fails, to show retries and the delivery log"}`})

	mux := http.NewServeMux()
	mux.Handle("POST "+livekittest.DeleteRoomPath, rooms)
	mux.Handle("POST /webhooks", hooks)
	mux.Handle("POST /failing", failing)
	log.Printf("devpeer: LiveKit and webhook receivers on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// receiver returns a webhook receiver fake verifying with the secret in
// the environment variable env, printing each delivery it gets at path.
func receiver(env, path string) *webhooktest.Server {
	rc := webhooktest.NewHandler()
	if err := rc.SetSecret(os.Getenv(env)); err != nil {
		log.Fatalf("devpeer: %s: %v", env, err)
	}
	rc.Before(func(d webhooktest.Delivery) { printDelivery(path, d) })
	return rc
}

func printRoom(r livekittest.Request) {
	if r.Err != nil {
		fmt.Printf("devpeer: LiveKit DeleteRoom REFUSED (%d): %v\n", r.Status, r.Err)
		return
	}
	fmt.Printf("devpeer: LiveKit DeleteRoom %q (token verified): answered %d\n", r.Room, r.Status)
}

// printDelivery prints the gist of a delivery and the answer it gets.
func printDelivery(path string, d webhooktest.Delivery) {
	if d.VerifyErr != nil {
		fmt.Printf("devpeer: webhook %s to %s REJECTED: %v\n", d.ID, path, d.VerifyErr)
		return
	}
	var ev struct {
		Data struct {
			CallStatus        string  `json:"call_status"`
			DisconnectReason  *string `json:"disconnect_reason"`
			AnalysisSentiment *string `json:"analysis_sentiment"`
			Analysis          *struct {
				Summary string `json:"summary"`
			} `json:"analysis"`
		} `json:"data"`
	}
	json.Unmarshal(d.Body, &ev)
	line := fmt.Sprintf("devpeer: webhook %s %s to %s verified: call %s %s", d.Type, d.ID, path, d.CallID, ev.Data.CallStatus)
	if ev.Data.DisconnectReason != nil && d.Type == "call.ended" {
		line += fmt.Sprintf(" (%s)", *ev.Data.DisconnectReason)
	}
	if ev.Data.AnalysisSentiment != nil {
		line += ", sentiment " + *ev.Data.AnalysisSentiment
	}
	if ev.Data.Analysis != nil {
		line += fmt.Sprintf(", summary %q", ev.Data.Analysis.Summary)
	}
	fmt.Printf("%s; attempt %d answered %d\n", line, d.Attempt, d.Status)
}
