package endcall

import (
	"encoding/json"
	"time"
)

// event is the body of every webhook.
type event struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      *Call  `json:"data"`
}

// EventBody returns the body of a webhook of type eventType about c, owed
// since at: {"type":...,"timestamp":...,"data":<call>}. A delivery's body
// is fixed once, so that every attempt sends the same bytes.
func EventBody(eventType string, at time.Time, c *Call) ([]byte, error) {
	return json.Marshal(event{Type: eventType, Timestamp: at.UTC().Format(time.RFC3339), Data: c})
}
