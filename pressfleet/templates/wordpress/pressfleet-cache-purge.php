<?php
/**
 * Plugin Name: pressfleet cache purge
 * Description: Purges nginx's FastCGI page cache when content changes (publish, update, delete, comments).
 *              Shipped and kept up to date by pressfleet; nginx answers purges only from 127.0.0.1.
 * Version: 1.0
 */

if (!defined('ABSPATH')) { exit; }

/**
 * Purge one path (e.g. "/hello-world/") from nginx's cache: a GET of https://DOMAIN/purge/PATH sent to this
 * very host (127.0.0.1, which nginx's purge location alone allows), whatever DOMAIN resolves to elsewhere.
 */
function pressfleet_purge_path($path) {
    $host = parse_url(home_url(), PHP_URL_HOST);
    $pin = function ($handle) use ($host) {
        curl_setopt($handle, CURLOPT_RESOLVE, [$host . ':443:127.0.0.1']);
    };
    add_action('http_api_curl', $pin);
    wp_remote_get('https://' . $host . '/purge' . $path, ['timeout' => 3, 'sslverify' => false, 'redirection' => 0]);
    remove_action('http_api_curl', $pin);
}

function pressfleet_purge_urls(array $urls) {
    foreach (array_unique(array_filter($urls)) as $url) {
        $path = parse_url($url, PHP_URL_PATH) ?: '/';
        $query = parse_url($url, PHP_URL_QUERY);
        pressfleet_purge_path($path . ($query ? '?' . $query : ''));
    }
}

/** The pages a change to POST can show on: itself, the home page, its feeds and archives. */
function pressfleet_purge_post($post_id) {
    $post = get_post($post_id);
    if (!$post || wp_is_post_revision($post) || wp_is_post_autosave($post)) { return; }
    $urls = [get_permalink($post), home_url('/'), get_feed_link(), get_post_type_archive_link($post->post_type)];
    foreach (wp_get_post_categories($post->ID) as $cat) { $urls[] = get_category_link($cat); }
    $urls[] = get_author_posts_url($post->post_author);
    pressfleet_purge_urls($urls);
}

add_action('transition_post_status', function ($new, $old, $post) {
    if ($new === 'publish' || $old === 'publish') { pressfleet_purge_post($post->ID); }
}, 10, 3);
add_action('save_post', function ($post_id) {
    if (get_post_status($post_id) === 'publish') { pressfleet_purge_post($post_id); }
});
add_action('deleted_post', 'pressfleet_purge_post');
add_action('comment_post', function ($comment_id) {
    $c = get_comment($comment_id);
    if ($c) { pressfleet_purge_post($c->comment_post_ID); }
});
add_action('wp_set_comment_status', function ($comment_id) {
    $c = get_comment($comment_id);
    if ($c) { pressfleet_purge_post($c->comment_post_ID); }
});
add_action('switch_theme', function () { pressfleet_purge_urls([home_url('/')]); });
