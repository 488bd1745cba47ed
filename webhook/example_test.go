package webhook_test

import (
	"fmt"
	"time"

	"github.com/endcall/endcall/webhook"
)

// A delivery signed with the endpoint's current and previous secret, as
// during the 24 hours after a rotation: receivers holding either verify it.
func ExampleSign() {
	secrets := []string{
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIz",
	}
	ts := time.Unix(1700000000, 0)
	sig, err := webhook.Sign(secrets, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, []byte(`{"type":"call.ended"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	// Output: v1,LWeom/XASmk1PuvG/Ao+aEdj++ZDuzGPPbmkdcPQjSc= v1,+jTd7RLMI9kmLoUy2d7eR0uiXcbjULGhcV1G1slqv2E=
}

func ExampleJitter() {
	schedule, err := webhook.ParseSchedule(webhook.DefaultSchedule)
	if err != nil {
		panic(err)
	}
	// In production r is rand.Float64(); 0 and 0.999 show the bounds.
	fmt.Println(len(schedule)+1, "attempts; the third waits between", webhook.Jitter(schedule[1], 0), "and", webhook.Jitter(schedule[1], 0.999))
	// Output: 8 attempts; the third waits between 4m0s and 5m59.88s
}
