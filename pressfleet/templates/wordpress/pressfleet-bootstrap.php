<?php
/**
 * pressfleet's bridge to WordPress's own PHP API (wp-cli is not available everywhere).
 *
 * Run by php-cli as the site's user, from the site's folder:  php pressfleet-bootstrap.php ACTION
 * Input is a JSON object on standard input (so passwords never reach a command line); output is one
 * JSON object on standard output. Actions:
 *   status       - installed or not, version, siteurl, db_version (stored) and wp_db_version (of core)
 *   install      - on a fresh database: wp_install() with title, admin user, email, password. On an installed
 *                  one it never changes content (title, options, posts are the site's own); it runs
 *                  wp_upgrade() when core is newer than the database (db_version < $wp_db_version)
 *   check-login  - wp_authenticate() of a user and password (true/false)
 *   site-health  - runs WordPress's Site Health tests and returns each test's status
 *   inventory    - core's version, every plugin (version, active) and theme (version), the active theme
 *   upgrade      - wp_upgrade() when core is newer than the database (after a core update); never installs
 *   activate     - activates the plugins named in `plugins` (slugs) that are installed and not active
 *   flush-cache  - wp_cache_flush() (the Redis object cache moves to a new generation)
 *   set-option   - update_option(`name`, `value`); prints the value before and whether it changed
 *   admin-user   - `action` add: an administrator `login` with `email` (a random password nobody keeps; WordPress's
 *                  own new-user mail carries the link to set one), or remove: that user, their posts given to
 *                  `reassign` (a login)
 *   end-sessions - every user's login sessions destroyed (WP_Session_Tokens), after new salts: nobody stays logged in
 */

if (PHP_SAPI !== 'cli') { exit(1); }
$pf_action = $argv[1] ?? 'status';
$pf_input = json_decode(stream_get_contents(STDIN) ?: '{}', true) ?: [];
$pf_domain = $pf_input['domain'] ?? 'localhost';

$_SERVER['HTTP_HOST'] = $pf_domain;
$_SERVER['SERVER_NAME'] = $pf_domain;
$_SERVER['HTTPS'] = 'on';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PORT'] = 443;
if ($pf_action === 'install' || $pf_action === 'status' || $pf_action === 'upgrade') {
    define('WP_INSTALLING', true);
}
define('ABSPATH', rtrim($pf_input['path'] ?? getcwd(), '/') . '/');
require ABSPATH . 'wp-load.php';

function pf_out($data) { echo json_encode($data), "\n"; exit(0); }

/** Each action in a function scope, so nothing here overwrites one of WordPress's globals. */
function pf_main($pf_action, $pf_input, $pf_domain) {
switch ($pf_action) {
case 'status':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    $installed = is_blog_installed();
    pf_out(['installed' => $installed, 'version' => get_bloginfo('version'),
            'siteurl' => $installed ? get_option('siteurl') : null,
            'db_version' => $installed ? (int) get_option('db_version') : null,
            'wp_db_version' => (int) $GLOBALS['wp_db_version']]);

case 'install':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    $url = 'https://' . $pf_domain;
    if (is_blog_installed()) {
        // The site's content is its own: nothing here touches the title or any option a person can change.
        $before = (int) get_option('db_version');
        if ($before < (int) $GLOBALS['wp_db_version']) {
            wp_upgrade();  // WordPress's own database upgrade, as wp-admin/upgrade.php runs it
            wp_cache_flush();
            pf_out(['changed' => true, 'installed' => true,
                    'upgraded' => [$before, (int) get_option('db_version')]]);
        }
        pf_out(['changed' => false, 'installed' => true]);
    }
    $result = wp_install($pf_input['title'], $pf_input['admin_user'], $pf_input['admin_email'], true, '',
                         wp_slash($pf_input['admin_password']));
    update_option('siteurl', $url);
    update_option('home', $url);
    update_option('permalink_structure', '/%postname%/');
    pf_out(['changed' => true, 'installed' => true, 'user_id' => $result['user_id']]);

case 'check-login':
    $user = wp_authenticate($pf_input['user'], $pf_input['password']);
    pf_out(['ok' => !is_wp_error($user)]);

case 'site-health':
    require_once ABSPATH . 'wp-admin/includes/admin.php';
    require_once ABSPATH . 'wp-admin/includes/class-wp-site-health.php';
    wp_set_current_user(1);
    $health = WP_Site_Health::get_instance();
    $results = [];
    foreach (WP_Site_Health::get_tests() as $kind => $tests) {
        foreach ($tests as $name => $test) {
            $callback = null;
            if (!empty($test['async_direct_test']) && is_callable($test['async_direct_test'])) {
                $callback = $test['async_direct_test'];
            } elseif (is_string($test['test']) && method_exists($health, 'get_test_' . $test['test'])) {
                $callback = [$health, 'get_test_' . $test['test']];
            } elseif (is_callable($test['test'])) {
                $callback = $test['test'];
            }
            if ($callback === null) { $results[$name] = ['status' => 'skipped', 'label' => $test['label']]; continue; }
            $r = call_user_func($callback);
            if (is_wp_error($r) || !is_array($r)) { $results[$name] = ['status' => 'error', 'label' => $test['label']]; continue; }
            $results[$name] = ['status' => $r['status'], 'label' => wp_strip_all_tags($r['label'])];
        }
    }
    pf_out($results);

case 'inventory':
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    $plugins = [];
    foreach (get_plugins() as $file => $data) {
        $slug = strpos($file, '/') !== false ? dirname($file) : basename($file, '.php');
        $plugins[$slug] = ['version' => $data['Version'], 'file' => $file, 'active' => is_plugin_active($file)];
    }
    $themes = [];
    foreach (wp_get_themes() as $slug => $theme) { $themes[$slug] = ['version' => $theme->get('Version')]; }
    pf_out(['core' => get_bloginfo('version'), 'plugins' => $plugins, 'themes' => $themes,
            'stylesheet' => get_stylesheet(), 'template' => get_template()]);

case 'upgrade':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    if (!is_blog_installed()) { fwrite(STDERR, "WordPress is not installed here\n"); exit(2); }
    $before = (int) get_option('db_version');
    if ($before < (int) $GLOBALS['wp_db_version']) {
        wp_upgrade();
        wp_cache_flush();
        pf_out(['upgraded' => [$before, (int) get_option('db_version')]]);
    }
    pf_out(['upgraded' => null]);

case 'activate':
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    $done = [];
    foreach (get_plugins() as $file => $data) {
        $slug = strpos($file, '/') !== false ? dirname($file) : basename($file, '.php');
        if (in_array($slug, $pf_input['plugins'] ?? [], true) && !is_plugin_active($file)) {
            $r = activate_plugin($file);
            if (is_wp_error($r)) { pf_out(['error' => $slug . ': ' . $r->get_error_message()]); }
            $done[] = $slug;
        }
    }
    pf_out(['activated' => $done]);

case 'flush-cache':
    pf_out(['flushed' => (bool) wp_cache_flush()]);

case 'set-option':
    $before = get_option($pf_input['name'], null);
    $changed = $before !== $pf_input['value'] && update_option($pf_input['name'], $pf_input['value']);
    pf_out(['before' => $before, 'changed' => (bool) $changed]);

case 'admin-user':
    require_once ABSPATH . 'wp-admin/includes/user.php';
    $login = $pf_input['login'];
    $user = get_user_by('login', $login);
    if (($pf_input['action'] ?? 'add') === 'remove') {
        if (!$user) { pf_out(['changed' => false]); }
        $heir = get_user_by('login', $pf_input['reassign'] ?? '');
        if (!$heir || $heir->ID === $user->ID) { pf_out(['error' => 'no other user to give the posts of ' . $login . ' to']); }
        pf_out(['changed' => wp_delete_user($user->ID, $heir->ID)]);
    }
    if ($user) {
        if (!in_array('administrator', (array) $user->roles, true)) { $user->set_role('administrator'); pf_out(['changed' => true, 'role' => 'set']); }
        pf_out(['changed' => false]);
    }
    $id = wp_insert_user(['user_login' => $login, 'user_email' => $pf_input['email'], 'role' => 'administrator',
                          'user_pass' => wp_generate_password(32, true, true)]);
    if (is_wp_error($id)) { pf_out(['error' => $id->get_error_message()]); }
    $mailed = true;
    add_action('wp_mail_failed', function () use (&$mailed) { $mailed = false; });
    wp_new_user_notification($id, null, 'user');
    pf_out(['changed' => true, 'user_id' => $id, 'mailed' => $mailed]);

case 'end-sessions':
    $count = 0;
    foreach (get_users(['fields' => 'ID', 'meta_key' => 'session_tokens']) as $id) {
        $count += count(WP_Session_Tokens::get_instance((int) $id)->get_all());
    }
    WP_Session_Tokens::destroy_all_for_all_users();
    pf_out(['ended' => $count]);

default:
    fwrite(STDERR, "unknown action: " . $pf_action . "\n");
    exit(2);
}
}

pf_main($pf_action, $pf_input, $pf_domain);
