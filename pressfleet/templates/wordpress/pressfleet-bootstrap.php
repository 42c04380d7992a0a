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
 * Networks (multisite):
 *   network-install - with `no_network` (wp-config.php then leaves MULTISITE out): WordPress's own network install,
 *                  as wp-admin/network.php runs it (install_network(), populate_network()); `subdomain` true or false
 *   site-list    - every subsite: blog_id, domain, path, title, home, whether it is the main site
 *   site-add     - wp_insert_site() of `slug` at `domain` and `path`, titled `title`, with `admin_email`'s user (made
 *                  if there is none, not mailed yet) as its administrator; a subdirectory slug that is a main-site
 *                  page or post name is refused
 *   site-remove  - wp_delete_site() of `blog_id` (its tables and uploads/sites/N go); never the main site; with
 *                  `delete_user`, that user too (the administrator a failed site-add made)
 *   admin-welcome - WordPress's new-user mail to `user_id` (the link to set a password)
 *   site-address - the subsite `blog_id` moved to `domain` and `path` (wp_blogs) with its home and siteurl set to
 *                  `url`; prints the address it had, so a failed mapping can put it back
 * `upgrade` and `install` upgrade every subsite's tables too on a network (as wp-admin/network/upgrade.php does).
 *
 * With `no_network` in the input, PRESSFLEET_NO_NETWORK is defined: WordPress starts as a single site.
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
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';  // WordPress logs who made a subsite (wp_insert_site)
if (!empty($pf_input['no_network'])) {
    define('PRESSFLEET_NO_NETWORK', true);
}
if ($pf_action === 'install' || $pf_action === 'status' || $pf_action === 'upgrade' || $pf_action === 'network-install') {
    define('WP_INSTALLING', true);
}
define('ABSPATH', rtrim($pf_input['path'] ?? getcwd(), '/') . '/');
require ABSPATH . 'wp-load.php';

function pf_out($data) { echo json_encode($data), "\n"; exit(0); }

/** wp_upgrade() of the main site and then, on a network, of every subsite whose tables are older than core (the
 * network's own tables are upgraded by the main site's wp_upgrade(): upgrade_network()). Returns [before, after]
 * of the main site, or null when nothing needed it, and how many subsites were upgraded. */
function pf_upgrade_all() {
    $before = (int) get_option('db_version');
    $main = null;
    if ($before < (int) $GLOBALS['wp_db_version']) {
        wp_upgrade();
        $main = [$before, (int) get_option('db_version')];
    }
    $subsites = 0;
    if (is_multisite()) {
        foreach (get_sites(['number' => 0, 'fields' => 'ids']) as $id) {
            if (is_main_site($id)) { continue; }
            switch_to_blog($id);
            if ((int) get_option('db_version') < (int) $GLOBALS['wp_db_version']) { wp_upgrade(); $subsites++; }
            restore_current_blog();
        }
    }
    if ($main !== null || $subsites) { wp_cache_flush(); }
    return [$main, $subsites];
}

/** The network's own tables by name even while WordPress runs as a single site (as wp-admin/network.php does). */
function pf_network_tables() {
    global $wpdb;
    foreach ($wpdb->tables('ms_global') as $table => $prefixed) { $wpdb->$table = $prefixed; }
}

function pf_site($id) {
    $site = get_site((int) $id);
    if (!$site) { return null; }
    return ['blog_id' => (int) $site->blog_id, 'domain' => $site->domain, 'path' => $site->path,
            'title' => get_blog_option($site->blog_id, 'blogname'), 'home' => get_blog_option($site->blog_id, 'home'),
            'main' => is_main_site($site->blog_id)];
}

/** Each action in a function scope, so nothing here overwrites one of WordPress's globals. */
function pf_main($pf_action, $pf_input, $pf_domain) {
switch ($pf_action) {
case 'status':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    require_once ABSPATH . 'wp-admin/includes/network.php';
    pf_network_tables();
    $installed = is_blog_installed();
    pf_out(['network' => $installed && !empty(network_domain_check()), 'installed' => $installed, 'version' => get_bloginfo('version'), 'multisite' => is_multisite(),
            'siteurl' => $installed ? get_option('siteurl') : null,
            'db_version' => $installed ? (int) get_option('db_version') : null,
            'wp_db_version' => (int) $GLOBALS['wp_db_version']]);

case 'install':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    $url = 'https://' . $pf_domain;
    if (is_blog_installed()) {
        // The site's content is its own: nothing here touches the title or any option a person can change.
        // WordPress's own database upgrade, as wp-admin/upgrade.php (and on a network, network/upgrade.php) runs it
        [$main, $subsites] = pf_upgrade_all();
        if ($main !== null || $subsites) {
            pf_out(['changed' => true, 'installed' => true, 'upgraded' => $main, 'subsites_upgraded' => $subsites]);
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
    [$main, $subsites] = pf_upgrade_all();
    pf_out(['upgraded' => $main, 'subsites_upgraded' => $subsites]);

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

case 'switch-theme':
    $theme = wp_get_theme($pf_input['theme']);
    if (!$theme->exists() || !$theme->is_allowed()) { pf_out(['error' => $pf_input['theme'] . ': no such theme']); }
    $was = get_stylesheet();
    if ($was !== $theme->get_stylesheet()) { switch_theme($theme->get_stylesheet()); }
    pf_out(['theme' => get_stylesheet(), 'was' => $was]);

case 'deactivate':
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    $done = [];
    foreach (get_plugins() as $file => $data) {
        $slug = strpos($file, '/') !== false ? dirname($file) : basename($file, '.php');
        if (in_array($slug, $pf_input['plugins'] ?? [], true) && is_plugin_active($file)) {
            deactivate_plugins($file, true);
            $done[] = $slug;
        }
    }
    pf_out(['deactivated' => $done]);

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

case 'network-install':
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    require_once ABSPATH . 'wp-admin/includes/network.php';
    if (!is_blog_installed()) { pf_out(['error' => 'WordPress is not installed here', 'not_installed' => true]); }
    pf_network_tables();
    if (!empty(network_domain_check())) { pf_out(['changed' => false]); }  // the network is there already
    $admin = get_user_by('email', $pf_input['admin_email']) ?: get_user_by('id', 1);
    if (!$admin) { pf_out(['error' => 'no administrator to make the network\'s super admin']); }
    wp_set_current_user($admin->ID);
    $permalinks = get_option('permalink_structure');
    install_network();
    $r = populate_network(1, $pf_domain, $admin->user_email, get_option('blogname'), '/', !empty($pf_input['subdomain']));
    // populate_network() finishes, then reports a missing wildcard DNS record of a subdomain network as an error:
    // pressfleet's control side checks each subsite's name itself
    if (is_wp_error($r) && $r->get_error_code() !== 'no_wildcard_dns') { pf_out(['error' => $r->get_error_message()]); }
    // populate_network() gives a subdirectory network's main site /blog/... permalinks: a site that converts keeps its
    // own, so no address it published breaks
    if ($permalinks !== '' && get_option('permalink_structure') !== $permalinks) {
        update_option('permalink_structure', $permalinks);
        delete_option('rewrite_rules');
    }
    wp_cache_flush();  // a lookup cached before the network's rows were written must not hide them
    pf_out(['changed' => true]);

case 'site-list':
    if (!is_multisite()) { pf_out(['error' => 'this site is not a network']); }
    $sites = [];
    foreach (get_sites(['number' => 0, 'fields' => 'ids']) as $id) { $sites[] = pf_site($id); }
    pf_out(['sites' => $sites]);

case 'site-add':
    if (!is_multisite()) { pf_out(['error' => 'this site is not a network']); }
    if (domain_exists($pf_input['site_domain'], $pf_input['site_path'], 1)) {
        pf_out(['error' => 'a subsite at ' . $pf_input['site_domain'] . $pf_input['site_path'] . ' exists already']);
    }
    // a subdirectory subsite's path would hide the main site's own page or post of that name
    if (!is_subdomain_install() && $GLOBALS['wpdb']->get_var($GLOBALS['wpdb']->prepare(
            "SELECT ID FROM {$GLOBALS['wpdb']->posts} WHERE post_name = %s AND post_status IN ('publish', 'private', 'future') LIMIT 1",
            $pf_input['slug']))) {
        pf_out(['error' => 'the main site has a page or post at /' . $pf_input['slug'] . '/: pick another slug']);
    }
    $email = $pf_input['admin_email'];
    $user = get_user_by('email', $email);
    $made = false;
    if (!$user) {
        $login = sanitize_user(strtolower(preg_replace('/@.*/', '', $email)) . '-' . $pf_input['slug'], true);
        $id = wpmu_create_user($login, wp_generate_password(32, true, true), $email);
        if (!$id) { pf_out(['error' => 'the administrator ' . $email . ' could not be created']); }
        $user = get_user_by('id', $id);
        $made = true;
    }
    $blog_id = wp_insert_site(['domain' => $pf_input['site_domain'], 'path' => $pf_input['site_path'],
                               'title' => $pf_input['title'], 'user_id' => $user->ID, 'network_id' => 1]);
    if (is_wp_error($blog_id)) { pf_out(['error' => $blog_id->get_error_message()]); }
    pf_out(['changed' => true, 'site' => pf_site($blog_id), 'admin_made' => $made, 'user_id' => $user->ID]);

case 'admin-welcome':
    // WordPress's own new-user mail (the link to set a password), sent once the new subsite is proved
    $mailed = true;
    add_action('wp_mail_failed', function () use (&$mailed) { $mailed = false; });
    wp_new_user_notification((int) $pf_input['user_id'], null, 'user');
    pf_out(['mailed' => $mailed]);

case 'site-remove':
    if (!is_multisite()) { pf_out(['error' => 'this site is not a network']); }
    $id = (int) $pf_input['blog_id'];
    if (!get_site($id)) { pf_out(['changed' => false]); }
    if (is_main_site($id)) { pf_out(['error' => 'the main site is the network itself: it is never removed alone']); }
    require_once ABSPATH . 'wp-admin/includes/admin.php';
    $r = wp_delete_site($id);
    if (is_wp_error($r)) { pf_out(['error' => $r->get_error_message()]); }
    if (!empty($pf_input['delete_user'])) {  // the administrator a failed add-site made: it goes with the subsite
        require_once ABSPATH . 'wp-admin/includes/ms.php';
        wpmu_delete_user((int) $pf_input['delete_user']);
    }
    pf_out(['changed' => true]);

case 'site-address':
    if (!is_multisite()) { pf_out(['error' => 'this site is not a network']); }
    $before = pf_site($pf_input['blog_id']);
    if (!$before) { pf_out(['error' => 'no subsite ' . (int) $pf_input['blog_id']]); }
    $r = wp_update_site($before['blog_id'], ['domain' => $pf_input['site_domain'], 'path' => $pf_input['site_path']]);
    if (is_wp_error($r)) { pf_out(['error' => $r->get_error_message()]); }
    switch_to_blog($before['blog_id']);
    $siteurl = get_option('siteurl');
    update_option('home', $pf_input['url']);
    update_option('siteurl', $pf_input['siteurl'] ?? $pf_input['url']);
    restore_current_blog();
    clean_blog_cache($before['blog_id']);
    pf_out(['changed' => true, 'before' => $before, 'siteurl_before' => $siteurl, 'site' => pf_site($before['blog_id'])]);

default:
    fwrite(STDERR, "unknown action: " . $pf_action . "\n");
    exit(2);
}
}

pf_main($pf_action, $pf_input, $pf_domain);
