#!/usr/bin/env bash
# Throwaway Postgres and Redis for development, tests and benchmarks.
#
#   scripts/services.sh install [COMMAND...]
#       Installs the Postgres server and Redis binaries with apt-get when they
#       are missing (apt-get update runs once, only when something is missing),
#       and the COMMANDs (e.g. curl) whose Debian package has the same name.
#   scripts/services.sh start DIR [--fast]
#       Starts a private Postgres and a private Redis under DIR on free ports
#       (never 5432/6379, never the system instances) and writes DIR/env with
#       DATABASE_URL and REDIS_URL. --fast turns off fsync, synchronous_commit
#       and full_page_writes (tests only: crash safety is irrelevant there).
#       A previous instance left in DIR is stopped first.
#   scripts/services.sh stop DIR
#       Stops both servers and removes DIR. Idempotent; safe in a trap.
#   scripts/services.sh port
#       Prints a free TCP port.
#   scripts/services.sh crash-postgres DIR
#       Stops DIR's Postgres the way a crash would (immediate mode: no
#       shutdown checkpoint, WAL not yet written is lost) and starts it again
#       on the same port, which runs crash recovery. For fault tests.
#   scripts/services.sh run DIR [--fast] [--prefix P] -- COMMAND [ARGS...]
#       start, export the env file's variables (as P<NAME>, e.g. --prefix TEST_
#       gives TEST_DATABASE_URL), run COMMAND, stop (also on failure or Ctrl-C),
#       and exit with COMMAND's status.
#
# Postgres refuses to run as root. When run as root, the servers' files are
# owned by the `postgres` system user (created if missing) and Postgres runs
# through `runuser -u postgres --`; when DIR is not reachable by that user (a
# repository under /root), the data lives in a mktemp directory under /tmp
# and DIR/pg is a symlink to it, so `stop` finds and removes it.
set -euo pipefail

READY_TIMEOUT=${SERVICES_READY_TIMEOUT:-30} # seconds
PG_USER=postgres

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }
have() { local p; p=$(command -v "$1") && [[ -x $p ]]; }

# as_pg runs a command as the user that owns the Postgres files.
# From /, so that an unreadable working directory (/root/...) does not matter.
as_pg() {
	if is_root; then (cd / && runuser -u "$PG_USER" -- "$@"); else "$@"; fi
}

# pg_bindir prints the directory holding initdb, pg_ctl and postgres: the
# newest /usr/lib/postgresql/*/bin, else the directory of initdb on PATH.
pg_bindir() {
	local d best
	best=$(for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && echo "$d"
	done | sort -t/ -k5,5V | tail -n1)
	if [[ -z $best ]] && have initdb && have pg_ctl && have postgres; then
		best=$(dirname "$(command -v initdb)")
	fi
	[[ -n $best ]] || return 1
	echo "$best"
}

# missing_packages prints the apt packages needed for what is not installed:
# the servers, and the extra commands given (packages of the same name).
missing_packages() {
	local pkgs=() c
	pg_bindir >/dev/null || pkgs+=(postgresql)
	have redis-server || pkgs+=(redis-server)
	have redis-cli || pkgs+=(redis-tools)
	have runuser || pkgs+=(util-linux)
	for c in "$@"; do
		have "$c" || pkgs+=("$c")
	done
	echo "${pkgs[@]}"
}

cmd_install() {
	local pkgs sudo=()
	pkgs=$(missing_packages "$@")
	[[ -z $pkgs ]] && return 0
	log "installing: $pkgs"
	if ! is_root; then
		have sudo || die "missing $pkgs and not root (no sudo): install them with apt-get"
		sudo=(sudo)
	fi
	have apt-get || die "missing $pkgs and apt-get is not available: install them yourself"
	# The packages' postinst may start system-wide servers on 5432/6379; we
	# never use them (every server here is private and on a free port).
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086 # word splitting intended
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
	pkgs=$(missing_packages "$@")
	[[ -z $pkgs ]] || die "still missing after apt-get install: $pkgs"
}

# free_port prints a TCP port nobody listens on. It probes random ports below
# the kernel's ephemeral range (so outgoing connections do not take it later);
# 5432 and 6379 are outside the range anyway.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 10000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free TCP port found"
}

# wait_for runs a probe until it succeeds or READY_TIMEOUT passes.
wait_for() {
	local deadline=$((SECONDS + READY_TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

start_postgres() {
	local dir=$1 fast=$2 bin pgroot port group
	bin=$(pg_bindir) || die "Postgres server binaries not found (run: scripts/services.sh install)"

	pgroot=$dir/pg
	mkdir -p "$pgroot"
	if is_root; then
		if ! id -u "$PG_USER" >/dev/null 2>&1; then
			log "creating the $PG_USER system user"
			if getent group "$PG_USER" >/dev/null; then group=(--gid "$PG_USER"); else group=(--user-group); fi
			useradd --system "${group[@]}" --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$PG_USER"
		fi
		chown "$PG_USER:" "$pgroot"
		# The socket path must fit in 107 bytes; the directory must be
		# reachable by the postgres user.
		if ! runuser -u "$PG_USER" -- test -w "$pgroot" || ((${#pgroot} > 80)); then
			rmdir "$pgroot"
			pgroot=$(mktemp -d /tmp/endcall-pg.XXXXXX)
			chown "$PG_USER:" "$pgroot"
			chmod 700 "$pgroot"
			ln -s "$pgroot" "$dir/pg"
		fi
	elif ((${#pgroot} > 80)); then
		rmdir "$pgroot"
		pgroot=$(mktemp -d /tmp/endcall-pg.XXXXXX)
		ln -s "$pgroot" "$dir/pg"
	fi
	pgroot=$(cd "$pgroot" && pwd -P)

	as_pg "$bin/initdb" --no-sync -D "$pgroot/data" -U postgres --auth=trust -E UTF8 --locale=C >"$pgroot/initdb.log" 2>&1 ||
		die "initdb failed: $(tail -n 20 "$pgroot/initdb.log")"
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$pgroot'"
		echo "max_connections = 300"
		if [[ $fast == 1 ]]; then
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
		fi
	} | as_pg tee -a "$pgroot/data/postgresql.conf" >/dev/null

	# A port can be taken between probing and binding: try a few.
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		rm -f "$pgroot/postgres.log"
		if as_pg "$bin/pg_ctl" -D "$pgroot/data" -l "$pgroot/postgres.log" -o "-p $port" -w -t "$READY_TIMEOUT" start >/dev/null 2>&1; then
			break
		fi
		port=
		grep -q "could not bind\|could not create listen socket\|Address already in use" "$pgroot/postgres.log" 2>/dev/null ||
			die "Postgres did not start within ${READY_TIMEOUT}s; log $pgroot/postgres.log:
$(tail -n 20 "$pgroot/postgres.log" 2>/dev/null)"
	done
	[[ -n $port ]] || die "Postgres could not bind a free port"
	echo "$port" >"$dir/pg.port"

	wait_for "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres ||
		die "Postgres on port $port not ready within ${READY_TIMEOUT}s; log $pgroot/postgres.log"
	"$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -c 'CREATE DATABASE endcall' >/dev/null ||
		die "could not create database endcall"
	PG_PORT=$port
}

start_redis() {
	local dir=$1 rdir=$1/redis port deadline
	have redis-server || die "redis-server not found (run: scripts/services.sh install)"
	mkdir -p "$rdir"
	rdir=$(cd "$rdir" && pwd -P)
	# A port can be taken between probing and binding: try a few.
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		rm -f "$rdir/redis.pid" "$rdir/redis.log"
		# Daemonized: this returns at once, binding happens in the background.
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --databases 4096 \
			--daemonize yes --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" --dir "$rdir" ||
			die "redis-server failed to start; log $rdir/redis.log"
		echo "$port" >"$dir/redis.port"
		deadline=$((SECONDS + READY_TIMEOUT))
		while :; do
			grep -q "Address already in use" "$rdir/redis.log" 2>/dev/null && continue 2
			# Bounded: whatever else took the port may never answer.
			[[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && break
			((SECONDS < deadline)) || die "Redis on port $port not ready within ${READY_TIMEOUT}s; log $rdir/redis.log:
$(tail -n 20 "$rdir/redis.log" 2>/dev/null)"
			sleep 0.05
		done
		REDIS_PORT=$port
		return 0
	done
	die "Redis could not bind a free port"
}

cmd_start() {
	local dir=${1:?usage: services.sh start DIR [--fast]} fast=0
	shift
	[[ ${1:-} == --fast ]] && fast=1
	cmd_install
	if [[ -e $dir ]]; then
		log "stopping the previous instance in $dir"
		cmd_stop "$dir"
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	# If anything below fails or is interrupted, remove what was started.
	STOP_DIR=$dir
	trap 'cmd_stop "$STOP_DIR"' EXIT
	start_postgres "$dir" "$fast"
	start_redis "$dir"
	cat >"$dir/env" <<-EOF
		DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/endcall?sslmode=disable
		REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
	EOF
	trap - EXIT
	log "Postgres on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT ($dir/env)"
}

# alive tells whether a process runs; a zombie (exited, not yet reaped by
# its parent, init for daemons) counts as gone.
alive() {
	local state=
	kill -0 "$1" 2>/dev/null || return 1
	[[ -r /proc/$1/stat ]] && read -r _ _ state _ </proc/"$1"/stat
	[[ $state != Z ]]
}

# is_a tells whether process PID runs a program whose command line contains
# NAME, so that a stale pid file (after a reboot) never gets an unrelated
# process killed.
is_a() {
	local pid=$1 name=$2 cmdline
	alive "$pid" || return 1
	[[ -r /proc/$pid/cmdline ]] || return 0
	cmdline=$(tr '\0' ' ' </proc/"$pid"/cmdline)
	[[ $cmdline == *"$name"* ]]
}

# wait_gone waits up to 10s for a process to exit.
wait_gone() {
	local pid=$1 i
	for ((i = 0; i < 200; i++)); do
		alive "$pid" || return 0
		sleep 0.05
	done
	return 1
}

cmd_stop() {
	local dir=${1:?usage: services.sh stop DIR} pgroot pid bin f
	[[ -e $dir ]] || return 0
	dir=$(cd "$dir" && pwd -P)
	# Never remove a directory that holds anything but ours (a mistyped DIR).
	for f in "$dir"/* "$dir"/.[!.]*; do
		[[ -e $f || -L $f ]] || continue
		case ${f##*/} in
		pg | redis | env | pg.port | redis.port) ;;
		*) die "stop: $dir holds $f, which services.sh did not create; not removing it" ;;
		esac
	done

	pgroot=$dir/pg
	[[ -L $pgroot ]] && pgroot=$(readlink "$pgroot")
	if [[ -f $pgroot/data/postmaster.pid ]]; then
		pid=$(head -n1 "$pgroot/data/postmaster.pid")
		if is_a "$pid" postgres; then
			# The data is thrown away: no need for a shutdown checkpoint.
			if bin=$(pg_bindir); then
				as_pg "$bin/pg_ctl" -D "$pgroot/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
			fi
			if alive "$pid"; then
				kill -QUIT "$pid" 2>/dev/null || true
				wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	fi

	if [[ -f $dir/redis/redis.pid ]]; then
		pid=$(cat "$dir/redis/redis.pid")
		if is_a "$pid" redis-server; then
			kill -TERM "$pid" 2>/dev/null || true
			wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi

	[[ -L $dir/pg ]] && rm -rf "$(readlink "$dir/pg")"
	rm -rf "$dir"
}

cmd_crash_postgres() {
	local dir=${1:?usage: services.sh crash-postgres DIR} pgroot port bin
	bin=$(pg_bindir) || die "Postgres server binaries not found"
	dir=$(cd "$dir" && pwd -P)
	pgroot=$dir/pg
	[[ -L $pgroot ]] && pgroot=$(readlink "$pgroot")
	port=$(cat "$dir/pg.port")
	as_pg "$bin/pg_ctl" -D "$pgroot/data" -m immediate -w -t 20 stop >/dev/null ||
		die "crash-postgres: Postgres in $dir did not stop"
	as_pg "$bin/pg_ctl" -D "$pgroot/data" -l "$pgroot/postgres.log" -o "-p $port" -w -t "$READY_TIMEOUT" start >/dev/null ||
		die "crash-postgres: Postgres did not come back on port $port; log $pgroot/postgres.log"
	wait_for "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres ||
		die "crash-postgres: Postgres on port $port not ready within ${READY_TIMEOUT}s"
}

cmd_run() {
	local dir=${1:?usage: services.sh run DIR [--fast] [--prefix P] -- COMMAND...} fast="" prefix="" rc=0 t0 key val
	shift
	while (($#)); do
		case $1 in
		--fast) fast=--fast ;;
		--prefix)
			prefix=${2:?run: --prefix needs a value}
			shift
			;;
		--) shift; break ;;
		*) die "run: unknown option $1" ;;
		esac
		shift
	done
	(($#)) || die "run: no command given"

	t0=$(date +%s%N)
	cmd_start "$dir" $fast
	dir=$(cd "$dir" && pwd -P)
	log "started in $(elapsed "$t0")"
	# From here on, whatever happens (failure, Ctrl-C), the servers go away.
	STOP_DIR=$dir
	trap 'cmd_stop "$STOP_DIR"' EXIT
	while IFS='=' read -r key val; do
		if [[ -n $key ]]; then export "$prefix$key=$val"; fi
	done <"$dir/env"

	"$@" || rc=$?

	t0=$(date +%s%N)
	trap - EXIT
	cmd_stop "$dir"
	log "stopped in $(elapsed "$t0")"
	return "$rc"
}

# elapsed prints the seconds since a `date +%s%N` timestamp.
elapsed() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}

main() {
	local cmd=${1:-}
	shift || true
	# Turn signals into an ordinary exit so that EXIT traps clean up.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	case $cmd in
	install) cmd_install "$@" ;;
	port) free_port ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	crash-postgres) cmd_crash_postgres "$@" ;;
	run) cmd_run "$@" ;;
	*)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
