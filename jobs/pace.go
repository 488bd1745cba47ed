package jobs

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pacer holds each endpoint with a rate_limit to at most rate deliveries in
// any window of paceWindow, across every worker sharing its Redis.
//
// asynq schedules retries in whole seconds, so pacing works in seconds too.
// Each delivery reserves a second once (at most rate deliveries a second,
// the next free one) and is re-scheduled to it, so a backlog waits in the
// queue, each task woken once, instead of polling. When its second comes, a
// log of the endpoint's recent grants decides: a delivery goes while fewer
// than rate went in the last paceWindow. A delivery late for its second (its
// worker was busy) goes as soon as the log has room, so that a backlogged
// worker still sends the endpoint its full rate; one more than a second late
// that finds no room takes the next free second, so that late deliveries
// that lose the race queue up again rather than all contend at once.
type Pacer struct {
	Redis redis.Scripter
}

// paceWindow is a second and 5%, so that the jitter between a grant and the
// request's arrival (up to 50 ms) does not put rate+1 requests into one
// second at the receiver.
const paceWindow = 1050 * time.Millisecond

// paceScript returns how many microseconds delivery ARGV[3] must still wait,
// 0 when it may go now (its grant is then logged).
//
// KEYS[1] the endpoint's reservations (a hash: second s, count n), KEYS[2]
// the delivery's reserved second, KEYS[3] the endpoint's grants (a sorted
// set scored in microseconds). ARGV[1] rate, ARGV[2] the window in
// microseconds. Time is Redis's own, so workers' clocks do not matter.
var paceScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local sec = tonumber(t[1])
local rate, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local function reserve()
	local b = redis.call('HMGET', KEYS[1], 's', 'n')
	local s, n = tonumber(b[1]) or 0, tonumber(b[2]) or 0
	if s < sec then s, n = sec, 0 end
	if n >= rate then s, n = s + 1, 0 end
	redis.call('HSET', KEYS[1], 's', s, 'n', n + 1)
	redis.call('PEXPIRE', KEYS[1], (s - sec + 2) * 1000)
	redis.call('SET', KEYS[2], s, 'PX', (s - sec) * 1000 + 600000)
	return s
end
local res = tonumber(redis.call('GET', KEYS[2]))
if not res then res = reserve() end
if res > sec then
	return res * 1000000 - now
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) < rate then
	redis.call('ZADD', KEYS[3], now, ARGV[3] .. ':' .. now)
	redis.call('PEXPIRE', KEYS[3], math.ceil(window / 1000) + 1000)
	redis.call('DEL', KEYS[2])
	return 0
end
if res < sec - 1 then
	res = reserve()
	if res > sec then
		return res * 1000000 - now
	end
end
local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window - now, 1)
`)

// Wait returns how long delivery must wait before it may be attempted at
// endpoint, limited to rate requests a second; zero means it may go now.
func (p *Pacer) Wait(ctx context.Context, endpoint, delivery string, rate int) (time.Duration, error) {
	// One hash tag per endpoint keeps the keys in one Redis Cluster slot.
	prefix := "endcall:webhook-pace:{" + endpoint + "}:"
	us, err := paceScript.Run(ctx, p.Redis, []string{prefix + "reserved", prefix + "delivery:" + delivery, prefix + "grants"},
		max(rate, 1), paceWindow.Microseconds(), delivery).Int64()
	return time.Duration(us) * time.Microsecond, err
}
