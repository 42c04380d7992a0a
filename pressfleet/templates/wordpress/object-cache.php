<?php
/**
 * pressfleet Redis object cache drop-in (wp-content/object-cache.php).
 *
 * Keeps WordPress's object cache in Redis through the phpredis extension, so queries and options
 * survive between requests. Settings come from wp-config.php: WP_REDIS_HOST, WP_REDIS_PORT,
 * WP_REDIS_PATH (unix socket, preferred), WP_REDIS_PASSWORD ([user, password]: the site's own Redis
 * ACL user, or a password), WP_REDIS_DATABASE, WP_REDIS_PREFIX, WP_REDIS_MAXTTL.
 * Every key starts with the prefix (`<site>:`), the only keys the site's Redis user may touch. That
 * user may not SCAN (Redis would list every site's key names), so a flush does not delete keys: it
 * moves the site to a new generation (`<site>:gen`, part of every key) and the old keys age out
 * (allkeys-lru). A generation is never reused, so a lost `<site>:gen` only starts a cold cache.
 * If Redis is unreachable or refuses the credentials the site keeps working with a per-request
 * cache (and says so in wp_cache_get_stats()). Written by pressfleet because no plugin registry is
 * reachable here; an internet-connected host may use the "Redis Object Cache" plugin instead.
 */

if (!defined('ABSPATH')) { exit; }

function wp_cache_supports($feature) {
    return in_array($feature, ['add_multiple', 'set_multiple', 'get_multiple', 'delete_multiple', 'flush_runtime', 'flush_group'], true);
}
function wp_cache_init() { $GLOBALS['wp_object_cache'] = new WP_Object_Cache(); }
function wp_cache_add($key, $data, $group = '', $expire = 0) { return $GLOBALS['wp_object_cache']->add($key, $data, $group, (int) $expire); }
function wp_cache_add_multiple(array $data, $group = '', $expire = 0) { $r = []; foreach ($data as $k => $v) { $r[$k] = wp_cache_add($k, $v, $group, $expire); } return $r; }
function wp_cache_replace($key, $data, $group = '', $expire = 0) { return $GLOBALS['wp_object_cache']->replace($key, $data, $group, (int) $expire); }
function wp_cache_set($key, $data, $group = '', $expire = 0) { return $GLOBALS['wp_object_cache']->set($key, $data, $group, (int) $expire); }
function wp_cache_set_multiple(array $data, $group = '', $expire = 0) { $r = []; foreach ($data as $k => $v) { $r[$k] = wp_cache_set($k, $v, $group, $expire); } return $r; }
function wp_cache_get($key, $group = '', $force = false, &$found = null) { return $GLOBALS['wp_object_cache']->get($key, $group, $force, $found); }
function wp_cache_get_multiple($keys, $group = '', $force = false) { return $GLOBALS['wp_object_cache']->get_multiple($keys, $group, $force); }
function wp_cache_delete($key, $group = '') { return $GLOBALS['wp_object_cache']->delete($key, $group); }
function wp_cache_delete_multiple(array $keys, $group = '') { $r = []; foreach ($keys as $k) { $r[$k] = wp_cache_delete($k, $group); } return $r; }
function wp_cache_incr($key, $offset = 1, $group = '') { return $GLOBALS['wp_object_cache']->incr($key, (int) $offset, $group); }
function wp_cache_decr($key, $offset = 1, $group = '') { return $GLOBALS['wp_object_cache']->incr($key, -(int) $offset, $group); }
function wp_cache_flush() { return $GLOBALS['wp_object_cache']->flush(); }
function wp_cache_flush_runtime() { return $GLOBALS['wp_object_cache']->flush_runtime(); }
function wp_cache_flush_group($group) { return $GLOBALS['wp_object_cache']->flush_group($group); }
function wp_cache_close() { return true; }
function wp_cache_add_global_groups($groups) { $GLOBALS['wp_object_cache']->add_global_groups($groups); }
function wp_cache_add_non_persistent_groups($groups) { $GLOBALS['wp_object_cache']->add_non_persistent_groups($groups); }
function wp_cache_switch_to_blog($blog_id) { $GLOBALS['wp_object_cache']->switch_to_blog($blog_id); }
function wp_cache_reset() { return $GLOBALS['wp_object_cache']->flush_runtime(); }

class WP_Object_Cache {
    public $cache_hits = 0;
    public $cache_misses = 0;
    public $redis_connected = false;
    private $cache = [];
    private $redis = null;
    private $prefix;
    private $generation = '0';
    private $maxttl;
    private $blog_prefix = '1';
    private $global_groups = [];
    private $non_persistent_groups = [];

    public function __construct() {
        $this->prefix = rtrim(defined('WP_REDIS_PREFIX') ? WP_REDIS_PREFIX : 'wp', ':');
        $this->maxttl = defined('WP_REDIS_MAXTTL') ? (int) WP_REDIS_MAXTTL : 0;
        $this->blog_prefix = is_multisite() ? (string) get_current_blog_id() : '1';
        if (class_exists('Redis') && !(defined('WP_REDIS_DISABLED') && WP_REDIS_DISABLED)) {
            try {
                $r = new Redis();
                $ok = defined('WP_REDIS_PATH')
                    ? $r->connect(WP_REDIS_PATH)
                    : $r->connect(defined('WP_REDIS_HOST') ? WP_REDIS_HOST : '127.0.0.1', defined('WP_REDIS_PORT') ? (int) WP_REDIS_PORT : 6379, 1.0);
                if ($ok && defined('WP_REDIS_PASSWORD') && WP_REDIS_PASSWORD !== '' && WP_REDIS_PASSWORD !== null) {
                    $ok = $r->auth(WP_REDIS_PASSWORD) === true;  // [user, password] authenticates as an ACL user
                }
                if ($ok && defined('WP_REDIS_DATABASE') && (int) WP_REDIS_DATABASE !== 0) {
                    $ok = $r->select((int) WP_REDIS_DATABASE) === true;
                }
                if ($ok) {
                    $this->redis = $r;
                    $this->generation = $this->current_generation();
                    $this->redis_connected = true;
                }
            } catch (Exception $e) {
                $this->redis = null;
            }
        }
    }

    private function generation_key() { return $this->prefix . ':gen'; }
    private function new_generation() {
        return base_convert((string) (int) (microtime(true) * 1000), 10, 36) . bin2hex(random_bytes(3));
    }
    /** The site's cache generation, made (never reused) when Redis has none. */
    private function current_generation() {
        $g = $this->redis->get($this->generation_key());
        if ($g === false) {
            $new = $this->new_generation();
            $this->redis->set($this->generation_key(), $new, ['nx']);
            $g = $this->redis->get($this->generation_key());
            if ($g === false) { $g = $new; }
        }
        return (string) $g;
    }

    private function group($group) { return $group === '' || $group === null ? 'default' : (string) $group; }
    /** This request's own copy is scoped like Redis's keys: on a network, subsite 2's options are never subsite 3's. */
    private function bucket($group) { return (isset($this->global_groups[$group]) ? 'global' : $this->blog_prefix) . ':' . $group; }
    private function persistent($group) { return $this->redis !== null && !isset($this->non_persistent_groups[$group]); }
    private function rkey($key, $group) {
        $scope = isset($this->global_groups[$group]) ? 'global' : $this->blog_prefix;
        return $this->prefix . ':' . $this->generation . ':' . $scope . ':' . $group . ':' . $key;
    }
    private function ttl($expire) {
        $expire = (int) $expire;
        if ($this->maxttl > 0 && ($expire === 0 || $expire > $this->maxttl)) { return $this->maxttl; }
        return $expire;
    }
    private function valid_key($key) { return is_int($key) || (is_string($key) && trim($key) !== ''); }

    public function add($key, $data, $group = 'default', $expire = 0) {
        if (wp_suspend_cache_addition() || !$this->valid_key($key)) { return false; }
        $group = $this->group($group);
        if (isset($this->cache[$this->bucket($group)][$key])) { return false; }
        if ($this->persistent($group)) {
            $ttl = $this->ttl($expire);
            $opts = $ttl > 0 ? ['nx', 'ex' => $ttl] : ['nx'];
            try {
                if (!$this->redis->set($this->rkey($key, $group), serialize($data), $opts)) { return false; }
            } catch (Exception $e) { return false; }
        }
        $this->cache[$this->bucket($group)][$key] = is_object($data) ? clone $data : $data;
        return true;
    }

    public function replace($key, $data, $group = 'default', $expire = 0) {
        $group = $this->group($group);
        $found = false;
        $this->get($key, $group, false, $found);
        return $found ? $this->set($key, $data, $group, $expire) : false;
    }

    public function set($key, $data, $group = 'default', $expire = 0) {
        if (!$this->valid_key($key)) { return false; }
        $group = $this->group($group);
        $this->cache[$this->bucket($group)][$key] = is_object($data) ? clone $data : $data;
        if ($this->persistent($group)) {
            $ttl = $this->ttl($expire);
            try {
                return $ttl > 0 ? $this->redis->setex($this->rkey($key, $group), $ttl, serialize($data))
                                : $this->redis->set($this->rkey($key, $group), serialize($data));
            } catch (Exception $e) { return false; }
        }
        return true;
    }

    public function get($key, $group = 'default', $force = false, &$found = null) {
        if (!$this->valid_key($key)) { $found = false; return false; }
        $group = $this->group($group);
        if (!$force && isset($this->cache[$this->bucket($group)]) && array_key_exists($key, $this->cache[$this->bucket($group)])) {
            $found = true;
            $this->cache_hits++;
            $v = $this->cache[$this->bucket($group)][$key];
            return is_object($v) ? clone $v : $v;
        }
        if ($this->persistent($group)) {
            try { $raw = $this->redis->get($this->rkey($key, $group)); } catch (Exception $e) { $raw = false; }
            if ($raw !== false) {
                $found = true;
                $this->cache_hits++;
                $v = unserialize($raw);
                $this->cache[$this->bucket($group)][$key] = $v;
                return is_object($v) ? clone $v : $v;
            }
        }
        $found = false;
        $this->cache_misses++;
        return false;
    }

    public function get_multiple($keys, $group = 'default', $force = false) {
        $group = $this->group($group);
        $out = [];
        $fetch = [];
        foreach ($keys as $k) {
            if (!$force && $this->valid_key($k) && isset($this->cache[$this->bucket($group)]) && array_key_exists($k, $this->cache[$this->bucket($group)])) {
                $out[$k] = $this->get($k, $group);
            } elseif ($this->valid_key($k) && $this->persistent($group)) {
                $fetch[] = $k;
                $out[$k] = false;
            } else {
                $out[$k] = $this->get($k, $group, $force);
            }
        }
        if ($fetch) {  // one MGET for the keys not in this request's cache
            try { $raws = $this->redis->mget(array_map(function ($k) use ($group) { return $this->rkey($k, $group); }, $fetch)); }
            catch (Exception $e) { $raws = false; }
            foreach ($fetch as $i => $k) {
                $raw = is_array($raws) && array_key_exists($i, $raws) ? $raws[$i] : false;
                if ($raw === false) { $this->cache_misses++; continue; }
                $this->cache_hits++;
                $v = unserialize($raw);
                $this->cache[$this->bucket($group)][$k] = $v;
                $out[$k] = is_object($v) ? clone $v : $v;
            }
        }
        return $out;
    }

    public function delete($key, $group = 'default') {
        $group = $this->group($group);
        $had = isset($this->cache[$this->bucket($group)]) && array_key_exists($key, $this->cache[$this->bucket($group)]);
        unset($this->cache[$this->bucket($group)][$key]);
        if ($this->persistent($group)) {
            try { return (bool) $this->redis->del($this->rkey($key, $group)) || $had; } catch (Exception $e) { return $had; }
        }
        return $had;
    }

    public function incr($key, $offset = 1, $group = 'default') {
        $group = $this->group($group);
        $found = false;
        $v = $this->get($key, $group, false, $found);
        if (!$found) { return false; }
        $v = max(0, (is_numeric($v) ? (int) $v : 0) + $offset);
        $this->set($key, $v, $group);
        return $v;
    }

    /** Everything of this site's cache, at once: a new generation (the old keys are never read again). */
    public function flush() {
        $this->cache = [];
        if ($this->redis !== null) {
            try {
                $new = $this->new_generation();
                if (!$this->redis->set($this->generation_key(), $new)) { return false; }
                $this->generation = $new;
            } catch (Exception $e) { return false; }
        }
        return true;
    }

    public function flush_runtime() { $this->cache = []; return true; }

    /** One group cannot be found without SCAN: the whole site's cache goes (more than asked, never less). */
    public function flush_group($group) {
        $group = $this->group($group);
        foreach (array_keys($this->cache) as $b) {  // every subsite's copy of the group
            if (substr($b, -strlen(':' . $group)) === ':' . $group) { unset($this->cache[$b]); }
        }
        return $this->persistent($group) ? $this->flush() : true;
    }

    public function add_global_groups($groups) { foreach ((array) $groups as $g) { $this->global_groups[$g] = true; } }
    public function add_non_persistent_groups($groups) { foreach ((array) $groups as $g) { $this->non_persistent_groups[$g] = true; } }
    public function switch_to_blog($blog_id) { $this->blog_prefix = (string) (int) $blog_id; }
    public function stats() {
        echo '<p>Hits: ' . (int) $this->cache_hits . ' Misses: ' . (int) $this->cache_misses .
             ' Redis: ' . ($this->redis_connected ? 'connected' : 'not connected') . '</p>';
    }
}
