#!/usr/bin/env bash
# Runs `endcall all` with simulated telephony against the services that
# `make dev` started (scripts/services.sh), seeds a demo workspace through the
# real API, and prints how to use it. Ctrl-C stops the server and the
# services. Expects ./endcall built and its database migrated.
#
#   ENV_FILE   the services' env file (default .dev/env); its directory is
#              what gets stopped and removed at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENV_FILE=${ENV_FILE:-.dev/env}
SERVICES_DIR=$(dirname "$ENV_FILE")
READY_TIMEOUT=${READY_TIMEOUT:-30} # seconds

die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

[[ -f $ENV_FILE ]] || die "$ENV_FILE not found: run \`make dev\`"
[[ -x ./endcall ]] || die "./endcall not found: run \`make build\`"
scripts/services.sh install curl

set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

server_pid=
peer_pid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	trap - INT TERM EXIT
	if [[ -n $peer_pid ]]; then
		kill "$peer_pid" 2>/dev/null || true
		wait "$peer_pid" 2>/dev/null || true
	fi
	[[ -z ${peer_dir:-} ]] || rm -rf "$peer_dir"
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		# endcall finishes in-flight work on SIGTERM; give it a while.
		for _ in $(seq 150); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	scripts/services.sh stop "$SERVICES_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# json_str KEY prints the value of the first string field KEY in the JSON on
# stdin. Enough for the flat fields read here: the API key, and the "id" of
# the call in an API response (the other ids are named *_id).
json_str() {
	local json re='"'"$1"'"[[:space:]]*:[[:space:]]*"([^"]*)"'
	json=$(cat)
	[[ $json =~ $re ]] || die "no \"$1\" in: $json"
	printf '%s\n' "${BASH_REMATCH[1]}"
}

# --- API key ---------------------------------------------------------------
created=$(./endcall apikey create --workspace demo) || die "endcall apikey create failed"
api_key=$(json_str api_key <<<"$created")
workspace_id=$(json_str workspace_id <<<"$created")

# --- server ----------------------------------------------------------------
port=$(scripts/services.sh port)
base=http://127.0.0.1:$port
dashboard_password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
# devpeer stands in for LiveKit and for a webhook receiver (cmd/devpeer).
peer_port=$(scripts/services.sh port)
peer=http://127.0.0.1:$peer_port
livekit_secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
peer_dir=$(mktemp -d)
go build -o "$peer_dir/devpeer" ./cmd/devpeer

TELEPHONY_MODE=simulated \
	HTTP_ADDR=127.0.0.1:$port \
	PUBLIC_BASE_URL=$base \
	DASHBOARD_USERNAME=admin \
	DASHBOARD_PASSWORD=$dashboard_password \
	LIVEKIT_URL=$peer \
	LIVEKIT_API_KEY=devkey \
	LIVEKIT_API_SECRET=$livekit_secret \
	WEBHOOK_ALLOW_PRIVATE_NETWORKS=true \
	RECOVERY_SWEEP_INTERVAL=10s \
	WEBHOOK_RETRY_SCHEDULE=${WEBHOOK_RETRY_SCHEDULE:-5s,10s,15s} \
	LOG_FORMAT=text \
	LOG_LEVEL=${LOG_LEVEL:-warn} \
	./endcall all &
server_pid=$!

deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; do
	kill -0 "$server_pid" 2>/dev/null || { wait "$server_pid" || true; die "endcall all exited before becoming healthy"; }
	((SECONDS < deadline)) || die "endcall all not healthy at $base/healthz within ${READY_TIMEOUT}s"
	sleep 0.2
done

# --- demo data -------------------------------------------------------------
# api METHOD PATH BODY prints the response body; a non-2xx answer is fatal.
api() {
	local out code
	out=$(curl -sS -X "$1" "$base$2" -H "Authorization: Bearer $api_key" \
		-H 'Content-Type: application/json' -d "$3" -w '\n%{http_code}') || die "$1 $2: request failed"
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	[[ $code == 2?? ]] || die "$1 $2 answered $code: $out"
	printf '%s\n' "$out"
}

api POST /v1/phone-numbers '{"number":"+15550100000","provider":"twilio"}' >/dev/null
endpoint=$(api POST /v1/webhooks "{\"url\":\"$peer/webhooks\",\"description\":\"make dev receiver\"}")
webhook_secret=$(json_str secret <<<"$endpoint")
endpoint_id=$(json_str id <<<"$endpoint")
# A second endpoint that always fails: with the short retry schedule above,
# its deliveries are failed (and their tasks archived) within a minute.
failing=$(api POST /v1/webhooks "{\"url\":\"$peer/failing\",\"description\":\"make dev: always fails\"}")
failing_id=$(json_str id <<<"$failing")
WEBHOOK_SECRET=$webhook_secret WEBHOOK_FAILING_SECRET=$(json_str secret <<<"$failing") \
	LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=$livekit_secret \
	"$peer_dir/devpeer" -addr "127.0.0.1:$peer_port" &
peer_pid=$!

user_lines=(
	"Great, this was really helpful, thank you!"
	"Can you tell me when my order will arrive?"
	"This is the third time I call about this, I am really annoyed."
)
call_ids=()
for n in 1 2 3; do
	body=$(printf '{"call_from":"+15550100000","call_to":"+1555010000%d","call_direction":"outbound","call_status":"in-progress","room_name":"demo-room-%d","transcript_object":[{"role":"agent","content":"Hello, thanks for calling. This is demo call %d.","start_ms":0,"end_ms":1500},{"role":"user","content":"%s","start_ms":2000,"end_ms":4000}]}' \
		"$n" "$n" "$n" "${user_lines[n - 1]}")
	id=$(api POST /v1/calls "$body" | json_str id)
	call_ids+=("$id")
done

cat <<EOF

==============================================================================
 endcall is running on $base (simulated telephony)

 API key:    $api_key
             (workspace "demo", $workspace_id)
 Dashboard:  $base/monitoring/
             login: admin / $dashboard_password
 Demo calls: ${call_ids[*]}

 Webhooks:   $peer/webhooks is endpoint $endpoint_id: devpeer verifies
             its signatures with that endpoint's secret only, so an endpoint
             you register yourself at the same URL gets 401s (its secret
             differs). devpeer also plays LiveKit: room deletions show here.
             $peer/failing is endpoint $failing_id: it always answers 500,
             retried on WEBHOOK_RETRY_SCHEDULE=${WEBHOOK_RETRY_SCHEDULE:-5s,10s,15s},
             so its deliveries end failed within a minute.

 End the first demo call; the room deletion, the analysis and two verified
 webhooks (call.ended, call.analyzed) appear below within a second:

   curl -sS -X POST $base/v1/calls/end -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' -d '{"call_id":"${call_ids[0]}"}'

 Next steps:

   # the failed deliveries of the workspace, with each attempt's answer
   curl -sS "$base/v1/webhook-deliveries?status=failed" -H "Authorization: Bearer $api_key"
   # register a call
   curl -sS -X POST $base/v1/calls -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' -d '{"call_from":"+15550100000","call_to":"+15550109999","call_direction":"outbound","call_status":"in-progress"}'
   # add a webhook endpoint (the answer shows its secret once)
   curl -sS -X POST $base/v1/webhooks -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' -d '{"url":"https://example.com/hooks","events":["call.ended"]}'
   # query calls
   curl -sS "$base/v1/calls/query?page=0&per_page=10" -H "Authorization: Bearer $api_key"

 Ctrl-C stops the server, Postgres and Redis.
==============================================================================

EOF

rc=0
wait "$server_pid" || rc=$?
server_pid=
echo "dev: endcall all exited with status $rc" >&2
exit "$rc"
