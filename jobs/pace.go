package jobs

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pacer spaces the deliveries to an endpoint with a rate_limit at least
// 1/rate apart, across every worker sharing its Redis. Each delivery
// reserves its own turn once and keeps it until it is used, so a backlog
// behind a slow endpoint waits in the queue, each task woken once at its
// turn, instead of every waiting task polling the limit and taking worker
// slots. A turn is only granted once the previous grant is an interval old,
// so deliveries that come late to their turns (a busy worker) do not go
// together.
type Pacer struct {
	Redis redis.Scripter
}

// reserveScript returns how many microseconds delivery KEYS[2] must still
// wait before it may go to the endpoint whose next free turn is in KEYS[1]
// and whose last grant is in KEYS[3]; 0 when it may go now (its reservation
// is then used up and the grant recorded). A delivery without a reservation
// takes the next free turn, ARGV[1] microseconds after the previous one.
// Time is Redis's own, so workers' clocks do not matter.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local turn = tonumber(redis.call('GET', KEYS[2]))
if not turn then
	turn = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
	redis.call('SET', KEYS[1], turn + interval, 'PX', math.ceil((turn - now + interval) / 1000) + 1000)
end
local ready = math.max(turn, tonumber(redis.call('GET', KEYS[3]) or '0') + interval)
if ready <= now then
	redis.call('DEL', KEYS[2])
	redis.call('SET', KEYS[3], now, 'PX', math.ceil(interval / 1000) + 1000)
	return 0
end
redis.call('SET', KEYS[2], turn, 'PX', math.ceil((turn - now) / 1000) + 600000)
return ready - now
`)

// paceSlack widens the interval between grants by 3%, so that the jitter
// between a grant and the request's arrival (up to 30 ms at 10 a second)
// does not put rate+1 requests into one second at the receiver.
const paceSlack = 1.03

// Wait returns how long delivery must wait for its turn at endpoint, limited
// to rate requests a second; zero means it may be attempted now.
func (p *Pacer) Wait(ctx context.Context, endpoint, delivery string, rate int) (time.Duration, error) {
	// One hash tag per endpoint keeps the keys in one Redis Cluster slot.
	prefix := "endcall:webhook-pace:{" + endpoint + "}:"
	interval := int64(paceSlack * 1e6 / float64(max(rate, 1)))
	us, err := reserveScript.Run(ctx, p.Redis, []string{prefix + "next", prefix + delivery, prefix + "last"}, interval).Int64()
	return time.Duration(us) * time.Microsecond, err
}
