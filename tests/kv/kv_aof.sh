#!/usr/bin/env bash
# weft-kv's append-only file: with appendfsync always, writes are made under load by
# redis-cli and redis-benchmark, the server is killed with SIGKILL, and after a restart every
# write that was acknowledged is there (an INCR counter: the last value a client saw is the
# floor); each type's value, TTLs, a cross-shard RENAME and MSET survive; a truncated last
# command is cut off with a log line; a BLPOP in the file does not block the replay; another
# worker count is refused.
# Usage: kv_aof.sh WEFT_KV_BINARY WORKERS. Exits 77 without redis-cli.
set -u
bin=$1
workers=${2:-1}
if ! command -v redis-cli >/dev/null; then
    echo "kv_aof: redis-cli not installed (Debian redis-tools): skipped"
    exit 77
fi
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
check() {
    if [ "$2" != "$3" ]; then
        echo "FAIL $1: want [$2] got [$3]"
        fail=1
    fi
}
start() { # extra args...
    : >"$tmp/out"
    "$bin" --port 0 --workers "$workers" --appendonly yes --dir "$tmp" "$@" \
        >"$tmp/out" 2>>"$tmp/err" &
    pid=$!
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/out")
        [ -n "$port" ] && return 0
        kill -0 $pid 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
cli() { redis-cli -p "$port" "$@"; }

start --appendfsync always || { echo "kv_aof: no start"; cat "$tmp/err"; exit 1; }
cli set s hello ex 1000 >/dev/null
cli append s " world" >/dev/null
cli rpush l a b c d >/dev/null
cli lpop l >/dev/null
cli hset h f1 v1 f2 v2 >/dev/null
cli hincrby h n 7 >/dev/null
cli mset m1 1 m2 2 m3 3 m4 4 m5 5 >/dev/null
cli rename m1 moved >/dev/null
cli set gone x px 1 >/dev/null
cli incrbyfloat f 2.5 >/dev/null
cli expire h 500 >/dev/null
cli del m5 >/dev/null

# Expiry across a restart: a list written again (its TTL kept) before it expired stays gone
# once it has (it came back as [b], without a TTL); one that expired at run time and was made
# again lives on as made, without a TTL (the expiry is logged as a DEL).
cli rpush xl a >/dev/null
cli pexpire xl 400 >/dev/null
cli rpush xl b >/dev/null
cli rpush xr a >/dev/null
cli pexpire xr 100 >/dev/null
sleep 0.3
cli rpush xr b >/dev/null

# Load: a counter incremented by one client, one reply at a time (each printed reply is an
# acknowledged write), beside redis-benchmark; SIGKILL once 300 replies are in.
redis-benchmark -p "$port" -q -n 100000 -c 8 -P 4 -r 1000 -t set,lpush >/dev/null 2>&1 &
bench=$!
redis-cli -p "$port" -r 100000 incr ctr >"$tmp/acks" 2>/dev/null &
incr=$!
for _ in $(seq 600); do
    [ "$(wc -l <"$tmp/acks")" -ge 300 ] && break
    sleep 0.05
done
{ kill -9 $pid; wait $pid; } 2>/dev/null
wait $incr $bench 2>/dev/null
acked=$(grep -E '^[0-9]+$' "$tmp/acks" | tail -1)
[ "${acked:-0}" -ge 1 ] || { echo "FAIL: no INCR acknowledged"; fail=1; }
sleep 0.5 # xl's 400 ms are over

start || { echo "kv_aof: no restart"; cat "$tmp/err"; exit 1; }
got=$(cli get ctr)
# Every acknowledged INCR is there; at most the one in flight more.
if [ "$got" -lt "$acked" ] || [ "$got" -gt $((acked + 1)) ]; then
    echo "FAIL counter: acknowledged $acked, after restart $got"
    fail=1
fi
check string "hello world" "$(cli get s)"
ttl=$(cli ttl s)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 1000 ] || { echo "FAIL ttl $ttl"; fail=1; }
check list "b c d" "$(cli lrange l 0 -1 | tr '\n' ' ' | sed 's/ $//')"
check hash_f2 "v2" "$(cli hget h f2)"
check hash_n "7" "$(cli hget h n)"
check renamed "1" "$(cli get moved)"
check renamed_src "" "$(cli get m1)"
check mset "2 3 4" "$(cli mget m2 m3 m4 | tr '\n' ' ' | sed 's/ $//')"
check deleted "0" "$(cli exists m5)"
check expired "0" "$(cli exists gone)"
check float "2.5" "$(cli get f)"
check expired_list "0" "$(cli exists xl)"
check remade_list "b" "$(cli lrange xr 0 -1 | tr '\n' ' ' | sed 's/ $//')"
check remade_ttl "-1" "$(cli pttl xr)"
check appendonly "yes" "$(cli config get appendonly | tail -1)"

# A crash in the middle of a write: the partial command is cut off at the next start.
cli shutdown >/dev/null 2>&1
wait $pid 2>/dev/null
printf '*3\r\n$3\r\nSET\r\n$3\r\nnew\r\n$5\r\nval' >>"$tmp/weft-kv-0.aof"
start || { echo "kv_aof: no start after truncation"; cat "$tmp/err"; exit 1; }
grep -q "truncated last command" "$tmp/err" || { echo "FAIL: no truncation line"; fail=1; }
check after_cut "hello world" "$(cli get s)"
check not_new "" "$(cli get new)"
cli set new ok >/dev/null
kill -TERM $pid
wait $pid
check clean_exit 0 $?

# The shard key stays with the files (the restarts above placed each key where its history
# is); a directory without it (written before keyed hashing) keeps the unkeyed shard choice.
grep -qE '^[0-9a-f]{32}$' "$tmp/weft-kv-aof.shardkey" || { echo "FAIL: no shard key file"; fail=1; }
key=$(cat "$tmp/weft-kv-aof.shardkey")
start || { echo "kv_aof: no restart"; cat "$tmp/err"; exit 1; }
check same_shard_key "$key" "$(cat "$tmp/weft-kv-aof.shardkey")"
check after_key_restart ok "$(cli get new)"
kill -TERM $pid
wait $pid
if [ "$workers" -gt 1 ]; then
    mv "$tmp/weft-kv-aof.shardkey" "$tmp/shardkey.saved"
    start || { echo "kv_aof: no legacy start"; cat "$tmp/err"; exit 1; }
    grep -q "predates keyed hashing" "$tmp/err" || { echo "FAIL: no legacy line"; fail=1; }
    kill -TERM $pid
    wait $pid
    [ -e "$tmp/weft-kv-aof.shardkey" ] && { echo "FAIL: legacy dir got a key"; fail=1; }
    mv "$tmp/shardkey.saved" "$tmp/weft-kv-aof.shardkey"
fi

# A file holding a BLPOP on an empty list (another server's, or edited by hand; weft-kv logs
# its pops as LPOP): the replay does not block (Redis's loader does not either), where it
# waited for ever before listening, deaf to SIGTERM.
if [ "$workers" = 1 ]; then
    mkdir "$tmp/bl"
    printf '*3\r\n$5\r\nblpop\r\n$2\r\nnl\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\nx\r\n$1\r\n1\r\n' \
        >"$tmp/bl/weft-kv-0.aof"
    echo 1 >"$tmp/bl/weft-kv-aof.shards" # its count, as every AOF directory has
    saved_tmp=$tmp
    tmp=$tmp/bl
    if start; then
        check replay_after_blpop 1 "$(cli get x)"
        kill -TERM $pid
        wait $pid
    else
        echo "FAIL: no start with a BLPOP in the file"
        fail=1
        kill -9 $pid 2>/dev/null
    fi
    tmp=$saved_tmp
fi

# A transaction cut short in the file (SIGKILL in the middle of its write): none of it is
# applied, and the file is cut before its MULTI, so that later writes do not join it. Its
# writes are logged between MULTI and EXEC (they were logged bare: the complete ones before
# the cut were applied, half a transaction). Then a whole one, through a restart.
if [ "$workers" = 1 ]; then
    saved_tmp=$tmp
    tmp=$saved_tmp/tx
    mkdir "$tmp"
    echo 1 >"$tmp/weft-kv-aof.shards"
    printf '*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1\r\n3\r\n' \
        >"$tmp/weft-kv-0.aof"
    if start --appendfsync always; then
        check tx_before "1" "$(cli get a)"
        check tx_cut "" "$(cli get b)$(cli get c)"
        grep -q "transaction without its EXEC cut off" "$tmp/err" || { echo "FAIL: no tx cut line"; fail=1; }
        printf 'MULTI\nSET d 4\nSET e 5\nGET a\nEXEC\n' | cli >/dev/null
        cli set f 6 >/dev/null
        kill -9 $pid
        wait $pid 2>/dev/null
        if start; then
            check tx_whole "4 5 6" "$(cli mget d e f | tr '\n' ' ' | sed 's/ $//')"
            check tx_none "" "$(cli get b)"
            kill -TERM $pid
            wait $pid
        else
            echo "FAIL: no restart after a transaction"; fail=1
        fi
        grep -q "MULTI" "$tmp/weft-kv-0.aof" || { echo "FAIL: the transaction was not grouped"; fail=1; }
    else
        echo "FAIL: no start with a cut transaction"; cat "$tmp/err"; fail=1
    fi
    tmp=$saved_tmp
fi

# A write the AOF cannot take (the file-size limit here, as a full disk would): the command
# is not acknowledged (appendfsync always), later writes are refused with -MISCONF, and the
# file is cut back to its last whole command, so a restart loads every acknowledged write.
# (Before: every write answered +OK, the refused bytes dropped, and the file left with a
# partial command in its middle that no start could load past.)
if [ "$workers" = 1 ]; then
    saved_tmp=$tmp
    tmp=$saved_tmp/full
    mkdir "$tmp"
    val=$(head -c 1000 /dev/zero | tr '\0' v)
    # In a subshell, whose limit and ignored SIGXFSZ the server inherits; it runs on after.
    (
        trap '' XFSZ
        ulimit -f 32
        start --appendfsync always && echo "$pid $port" >"$tmp/server"
    )
    read -r pid port <"$tmp/server" || { pid=; port=0; }
    n=0
    refused=0
    for i in $(seq 60); do
        r=$(timeout 3 redis-cli -p "$port" set "k$i" "$val" 2>&1)
        case "$r" in
        OK) n=$((n + 1)) ;;
        MISCONF*) refused=1; break ;;
        *) ;; # held: never acknowledged (the write that failed)
        esac
    done
    [ "$refused" = 1 ] || { echo "FAIL: no -MISCONF once the AOF could not be written"; fail=1; }
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    sleep 0.2
    if start; then
        check full_keys "$n" "$(cli dbsize)"
        check full_last "$val" "$(cli get "k$n")"
        kill -TERM $pid
        wait $pid
    else
        echo "FAIL: no start from the AOF a full file left"; cat "$tmp/err"
        fail=1
    fi
    tmp=$saved_tmp
fi

# Another worker count: refused with a message.
if "$bin" --port 0 --workers $((workers + 1)) --appendonly yes --dir "$tmp" >/dev/null \
    2>"$tmp/err2"; then
    echo "FAIL: started with another worker count"
    fail=1
fi
grep -q "was written by $workers shards" "$tmp/err2" || { echo "FAIL: no refusal"; fail=1; }
# The files without the count beside them (a backup of *.aof alone): refused too. They were
# replayed as a fresh directory's: the files past --workers dropped, keys put elsewhere.
mv "$tmp/weft-kv-aof.shards" "$tmp/shards.saved"
if "$bin" --port 0 --workers "$workers" --appendonly yes --dir "$tmp" >/dev/null \
    2>"$tmp/err3"; then
    echo "FAIL: started from AOF files without their shard count"
    fail=1
fi
grep -q "without .*weft-kv-aof.shards" "$tmp/err3" || { echo "FAIL: no refusal without the count"; cat "$tmp/err3"; fail=1; }
mv "$tmp/shards.saved" "$tmp/weft-kv-aof.shards"
pid=

[ $fail = 0 ] && echo "kv_aof: all checks passed ($workers workers, $acked INCRs acknowledged)"
exit $fail
