# pressfleet: Redis ACL users of the sites on this host (run as root by pressfleet.ssh.redisacl; constant text,
# arguments arrive as "$1"...; a password never travels on a command line).
#   admin [check]         pressfleet's admin user pf_admin exists (its password generated here once, root-only in
#                         /etc/pressfleet/redis-admin.password) and the `default` user is off; ACL SAVE if changed.
#                         Prints the words of what it changed (with `check`: would change, changing nothing).
#   getuser NAME          ACL GETUSER NAME as JSON (`null` when there is no such user)
#   setuser NAME RULE...  ACL SETUSER NAME RULE... PASSWORD, the password rule (#sha256) read from stdin; ACL SAVE
#   deluser NAME          ACL DELUSER NAME (its connections close); ACL SAVE; prints 1 or 0
#   keys DB PATTERN MODE  every key of database DB matching PATTERN, in batches inside Redis (key names never leave
#                         it): MODE count prints how many, MODE unlink unlinks them and prints how many
set -eu
secret=/etc/pressfleet/redis-admin.password
# As pressfleet's admin; on a host provisioned before ACL users (no admin password yet) `default` is all there is.
admin() {
    if [ -s "$secret" ]; then REDISCLI_AUTH=$(cat "$secret") redis-cli -e --no-auth-warning --user pf_admin "$@"
    else redis-cli -e "$@"; fi
}
saved() { admin ACL SAVE >/dev/null; }

action=$1
shift
case $action in
admin)
    changed=""
    if [ "${1:-}" = check ]; then
        if [ ! -s "$secret" ]; then changed="admin-password admin-user default-off"
        elif [ "$(admin ACL WHOAMI 2>/dev/null)" != pf_admin ]; then changed="admin-user default-off"
        elif admin --json ACL GETUSER default | grep -q '"on"'; then changed="default-off"
        fi
        echo $changed
        exit 0
    fi
    if [ ! -s "$secret" ]; then
        install -d -o root -g root -m 0755 /etc/pressfleet
        (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$secret.new")
        mv -f "$secret.new" "$secret"
        changed="$changed admin-password"
    fi
    chown root:root "$secret"
    chmod 0600 "$secret"
    # (redis-cli goes on as `default` when its AUTH fails: WHOAMI says who the connection really is)
    if [ "$(admin ACL WHOAMI 2>/dev/null)" != pf_admin ]; then
        # A fresh Redis (or one whose ACL file lost pressfleet's admin): only then does `default` still let anyone in.
        if [ "$(redis-cli -e ACL WHOAMI 2>/dev/null)" != default ]; then
            echo "Redis refuses pressfleet's admin password ($secret) and its default user is off: put back the" \
                 "password file that matches /etc/redis/users.acl, or empty that ACL file and restart redis-server" >&2
            exit 4
        fi
        # printf is a shell builtin: the password reaches redis-cli on stdin (-x), never on a command line
        printf '>%s' "$(cat "$secret")" | redis-cli -e -x ACL SETUSER pf_admin reset on '~*' '&*' +@all >/dev/null
        changed="$changed admin-user"
    fi
    if admin --json ACL GETUSER default | grep -q '"on"'; then
        admin ACL SETUSER default reset >/dev/null
        changed="$changed default-off"
    fi
    [ -z "$changed" ] || saved
    echo $changed
    ;;
getuser)
    admin --json ACL GETUSER "$1"
    ;;
setuser)
    admin -x ACL SETUSER "$@" >/dev/null
    saved
    ;;
deluser)
    admin ACL DELUSER "$1"
    saved
    ;;
keys)
    db=$1 pattern=$2 mode=$3 cursor=0 total=0
    lua='local r = redis.call("SCAN", ARGV[1], "MATCH", ARGV[2], "COUNT", 1000)
if ARGV[3] == "unlink" and #r[2] > 0 then redis.call("UNLINK", unpack(r[2])) end
return {r[1], #r[2]}'
    while :; do
        out=$(admin -n "$db" EVAL "$lua" 0 "$cursor" "$pattern" "$mode")
        cursor=$(printf '%s\n' "$out" | sed -n 1p)
        total=$((total + $(printf '%s\n' "$out" | sed -n 2p)))
        [ "$cursor" != 0 ] || break
    done
    echo "$total"
    ;;
*)
    echo "unknown action $action" >&2
    exit 2
    ;;
esac
