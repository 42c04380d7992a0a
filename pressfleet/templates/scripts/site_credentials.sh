# pressfleet: do a site's database user and Redis user accept these passwords? (run as root by tasks.rotate;
# constant text, arguments arrive as "$1"...)
#   DBUSER REDISUSER    stdin: two lines, the database password then the Redis password
# Prints "db ok" or "db refused", then "redis ok" or "redis refused". The passwords reach each client through its
# environment (root's own process, never a command line).
set -eu
IFS= read -r db_pw
IFS= read -r redis_pw
if MYSQL_PWD=$db_pw mariadb --no-defaults --protocol=socket -u "$1" -e 'SELECT 1' >/dev/null 2>&1; then
    echo "db ok"
else
    echo "db refused"
fi
# (redis-cli goes on as `default`, which is off, when its AUTH fails: PING then answers NOAUTH, not PONG)
if [ "$(REDISCLI_AUTH=$redis_pw redis-cli -e --no-auth-warning --user "$2" PING 2>/dev/null)" = PONG ]; then
    echo "redis ok"
else
    echo "redis refused"
fi
