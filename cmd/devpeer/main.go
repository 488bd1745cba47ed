// Command devpeer stands in for the outside world during `make dev`: a
// LiveKit RoomService that accepts DeleteRoom, and a webhook receiver that
// verifies each delivery with the official Standard Webhooks library and
// prints what it got. It is a development aid, not part of the service.
//
//	WEBHOOK_SECRET=whsec_... LIVEKIT_API_KEY=k LIVEKIT_API_SECRET=s devpeer -addr 127.0.0.1:9000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	wh, err := standardwebhooks.NewWebhook(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatalf("devpeer: WEBHOOK_SECRET: %v", err)
	}
	p := &peer{webhook: wh, lkKey: os.Getenv("LIVEKIT_API_KEY"), lkSecret: []byte(os.Getenv("LIVEKIT_API_SECRET"))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twirp/livekit.RoomService/DeleteRoom", p.deleteRoom)
	mux.HandleFunc("POST /webhooks", p.receive)
	mux.HandleFunc("POST /failing", p.fail)
	log.SetFlags(0)
	log.Printf("devpeer: LiveKit and webhook receiver on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

type peer struct {
	webhook  *standardwebhooks.Webhook
	lkKey    string
	lkSecret []byte
}

// deleteRoom checks the access token the way LiveKit does, then says the
// room is gone.
func (p *peer) deleteRoom(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return p.lkSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(p.lkKey), jwt.WithExpirationRequired())
	video, _ := claims["video"].(map[string]any)
	if err != nil || video["roomCreate"] != true {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":"unauthenticated","msg":"invalid token"}`)
		return
	}
	var req struct {
		Room string `json:"room"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	fmt.Printf("devpeer: LiveKit DeleteRoom %q (token verified)\n", req.Room)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}

// receive verifies a webhook and prints its gist.
func (p *peer) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := p.webhook.Verify(body, r.Header); err != nil {
		fmt.Printf("devpeer: webhook %s REJECTED: %v\n", r.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID                string  `json:"id"`
			CallStatus        string  `json:"call_status"`
			DisconnectReason  *string `json:"disconnect_reason"`
			AnalysisSentiment *string `json:"analysis_sentiment"`
			Analysis          *struct {
				Summary string `json:"summary"`
			} `json:"analysis"`
		} `json:"data"`
	}
	json.Unmarshal(body, &ev)
	line := fmt.Sprintf("devpeer: webhook %s %s verified: call %s %s", ev.Type, r.Header.Get("webhook-id"), ev.Data.ID, ev.Data.CallStatus)
	if ev.Data.DisconnectReason != nil && ev.Type == "call.ended" {
		line += fmt.Sprintf(" (%s)", *ev.Data.DisconnectReason)
	}
	if ev.Data.AnalysisSentiment != nil {
		line += ", sentiment " + *ev.Data.AnalysisSentiment
	}
	if ev.Data.Analysis != nil {
		line += fmt.Sprintf(", summary %q", ev.Data.Analysis.Summary)
	}
	fmt.Println(line)
	w.WriteHeader(http.StatusNoContent)
}

// fail answers every webhook with a 500, so that make dev shows retries,
// the delivery log's failed attempts and the dashboard's archive.
func (p *peer) fail(w http.ResponseWriter, r *http.Request) {
	fmt.Printf("devpeer: webhook %s to the always-failing endpoint: answered 500\n", r.Header.Get("webhook-id"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, `{"error":"devpeer's /failing endpoint always fails, to show retries and the delivery log"}`)
}
