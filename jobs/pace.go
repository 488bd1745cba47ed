package jobs

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pacer spaces the deliveries to an endpoint with a rate_limit 1/rate apart,
// across every worker sharing its Redis. Each delivery reserves its own turn
// once and keeps it until it is used, so a backlog behind a slow endpoint
// waits in the queue, each task woken once at its turn, instead of every
// waiting task polling the limit and taking worker slots.
type Pacer struct {
	Redis redis.Scripter
}

// reserveScript returns how many microseconds delivery KEYS[2] must still
// wait for its turn at the endpoint whose next free turn is in KEYS[1], 0
// when it may go now (its reservation is then used up). A delivery without a
// reservation takes the next free turn, ARGV[1] microseconds after the
// previous one. Time is Redis's own, so workers' clocks do not matter.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local turn = tonumber(redis.call('GET', KEYS[2]))
if not turn then
	local interval = tonumber(ARGV[1])
	turn = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
	redis.call('SET', KEYS[1], turn + interval, 'PX', math.ceil((turn - now + interval) / 1000) + 1000)
end
if turn <= now then
	redis.call('DEL', KEYS[2])
	return 0
end
redis.call('SET', KEYS[2], turn, 'PX', math.ceil((turn - now) / 1000) + 600000)
return turn - now
`)

// Wait returns how long delivery must wait for its turn at endpoint, limited
// to rate requests a second; zero means it may be attempted now.
func (p *Pacer) Wait(ctx context.Context, endpoint, delivery string, rate int) (time.Duration, error) {
	// One hash tag per endpoint keeps both keys in one Redis Cluster slot.
	prefix := "endcall:webhook-pace:{" + endpoint + "}:"
	us, err := reserveScript.Run(ctx, p.Redis, []string{prefix + "next", prefix + delivery}, 1000000/max(rate, 1)).Int64()
	return time.Duration(us) * time.Microsecond, err
}
